using Mae.MLNet.Interop;
using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Cli;

public partial class MaeCliTest
{
    /// <summary><c>mae pretrain --model convnextv2-atto</c>: FCMAE on the same folder, recipe and engine; the official
    /// mask ratio 0.6 by default; the encoder written under timm's names loads back as a ConvNeXt V2-Atto.</summary>
    [TestMethod]
    public void PretrainConvNextV2WithFcmaeWritesTimmNamedWeights()
    {
        string run = Path.Combine(root, "convnext");
        var (code, output, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "convnextv2-atto", "--input-size", "64",
            "--epochs", "1", "--warmup-epochs", "0", "--batch-size", "8", "--device", "cpu", "--out", run);
        Assert.AreEqual(0, code, error);
        StringAssert.Contains(output, "FCMAE, ConvNeXt V2 3ch 64px, depths [2, 2, 6, 2], dims [40, 80, 160, 320]");
        StringAssert.Contains(output, "mask ratio 0.6");
        StringAssert.Contains(output, "pre-trained 1 epochs (4 steps)");
        Assert.IsTrue(File.Exists(Path.Combine(run, "checkpoint-0001.maeckpt")));
        using var encoder = MaeWeightFile.LoadConvNextV2(Path.Combine(run, "convnextv2.safetensors"));
        Assert.AreEqual(ConvNextV2Config.Atto, encoder.Config);   // 224 px: the file does not hold the image size
        Assert.AreEqual(0, encoder.NumClasses);

        (code, _, error) = Mae("pretrain", "--images", Path.Combine(root, "images"), "--model", "convnextv2-atto", "--input-size", "48",
            "--epochs", "1", "--out", Path.Combine(root, "convnext-48"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(error, "multiple of the total stride 32");
    }
}
