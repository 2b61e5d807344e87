using Mae.MLNet.Runtime;
using TorchSharp;
using Mae.MLNet.Tests.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests;

/// <summary>Proves libLibTorchSharp loads in the test host (on Debian 12 only thanks to build/Mae.MLNet.targets)
/// and computes correctly.</summary>
[TestClass]
public class TorchSharpLoadsTest
{
    [TestMethod]
    public void MatmulComputesInTheTestHost()
    {
        using var a = arange(6, dtype: float32).reshape(2, 3);   // [[0,1,2],[3,4,5]]
        using var b = arange(12, dtype: float32).reshape(3, 4);  // rows 0..3, 4..7, 8..11
        using var c = a.matmul(b);
        // Closed form: c[1,2] = 3·2 + 4·6 + 5·10 = 80.
        Assert.AreEqual(80f, c[1, 2].item<float>());
        Assert.AreEqual(20f, c[0, 0].item<float>()); // 0·0 + 1·4 + 2·8
    }

    [TestMethod]
    public void DeviceOptionResolves()
    {
        Assert.AreEqual(DeviceType.CPU, MaeDevice.Cpu.Resolve().type);
        Assert.AreEqual(TorchRuntime.CudaAvailable ? DeviceType.CUDA : DeviceType.CPU, MaeDevice.Auto.Resolve().type);
        if (!TorchRuntime.CudaAvailable)
            Assert.ThrowsExactly<InvalidOperationException>(() => MaeDevice.Cuda.Resolve());
        Assert.AreEqual(MaeDevice.Cuda, MaeDeviceExtensions.Parse("CUDA"));
        Assert.ThrowsExactly<ArgumentException>(() => MaeDeviceExtensions.Parse("tpu"));
    }

    [TestMethod]
    public void SeedMakesRandomNumbersRepeat()
    {
        TorchRuntime.Seed(123);
        using var first = rand(5);
        TorchRuntime.Seed(123);
        using var second = rand(5);
        TorchRuntime.Seed(124);
        using var third = rand(5);
        Assert.IsTrue(TensorAssert.Same(first, second));
        Assert.IsFalse(TensorAssert.Same(first, third));
    }

    [TestMethod]
    public void ThreadCountIsSettable()
    {
        int before = TorchRuntime.Threads;
        try
        {
            TorchRuntime.Threads = 1;
            Assert.AreEqual(1, TorchRuntime.Threads);
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TorchRuntime.Threads = 0);
        }
        finally { TorchRuntime.Threads = before; }
    }
}
