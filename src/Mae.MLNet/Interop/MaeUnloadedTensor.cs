using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>A tensor of a <c>torch.save</c> file that is described but not loaded: everything outside the state dict
/// the model is built from (a training checkpoint's optimizer moments, for instance). Mae.MLNet reads only the
/// weights it uses, so a checkpoint with optimizer state costs the memory of its weights alone.</summary>
internal sealed class MaeUnloadedTensor
{
    internal MaeUnloadedTensor(string storageKey, ScalarType dtype, long[] shape, long numel, long storageElements)
    {
        StorageKey = storageKey;
        DType = dtype;
        Shape = shape;
        NumberOfElements = numel;
        StorageElements = storageElements;
    }

    public ScalarType DType { get; }
    public IReadOnlyList<long> Shape { get; }
    public long NumberOfElements { get; }
    /// <summary>The archive entry <c>data/&lt;key&gt;</c> that holds the values.</summary>
    internal string StorageKey { get; }
    internal long StorageElements { get; }

    public override string ToString() => $"{DType} [{string.Join(", ", Shape)}] (not loaded)";
}
