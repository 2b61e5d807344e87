using static TorchSharp.torch;
namespace Mae.MLNet.Tests;
[TestClass]
public class SmokeTest
{
    [TestMethod]
    public void Matmul()
    {
        using var a = ones(2, 3);
        using var b = ones(3, 4);
        using var c = a.matmul(b);
        Assert.AreEqual(3f, c[1, 2].item<float>());
    }
}
