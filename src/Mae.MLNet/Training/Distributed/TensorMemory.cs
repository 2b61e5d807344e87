using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>The address of a tensor's first element on its device (TorchSharp 0.107 has no <c>data_ptr()</c>):
/// LibTorchSharp's own <c>THSTensor_data</c>, the export TorchSharp's <c>data&lt;T&gt;()</c> uses.</summary>
static unsafe class TensorMemory
{
    static delegate* unmanaged<nint, nint> dataFunction;

    public static nint Address(Tensor tensor)
    {
        if (dataFunction == null)
        {
            if (!NativeLibrary.TryLoad("LibTorchSharp", typeof(torch).Assembly, null, out var lib) ||
                !NativeLibrary.TryGetExport(lib, "THSTensor_data", out var f))
                throw new MaeCollectiveException("TorchSharp's native library (LibTorchSharp) does not export THSTensor_data; the collective cannot address tensor memory.");
            dataFunction = (delegate* unmanaged<nint, nint>)f;
        }
        nint p = dataFunction(tensor.Handle);
        if (p == 0 && tensor.numel() > 0) throw new MaeCollectiveException($"The tensor's memory could not be addressed (shape [{string.Join(", ", tensor.shape)}], {tensor.device}).");
        return p;
    }
}
