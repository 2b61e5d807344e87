using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.FineTuning;

namespace Mae.MLNet.Tests;

[TestClass]
public class TorchSettingsScopeTest
{
    [TestMethod]
    public void TheScopeRestoresTf32FlagsAndThreadsAsTheCallerHadThem()
    {
        var (matmul, cudnn) = TorchRuntime.Tf32;
        int threads = TorchRuntime.Threads;
        try
        {
            foreach (var (m, c) in new[] { (false, false), (false, true), (true, false) })
            {
                TorchRuntime.SetTf32(m, c);
                Assert.AreEqual((m, c), TorchRuntime.Tf32, "libtorch's flags read back as set (CPU build too)");
                using (new TorchSettingsScope(threads: 1, allowTf32: true))
                {
                    Assert.AreEqual((true, true), TorchRuntime.Tf32);
                    Assert.AreEqual(1, TorchRuntime.Threads);
                }
                Assert.AreEqual((m, c), TorchRuntime.Tf32, "restored");
                Assert.AreEqual(threads, TorchRuntime.Threads, "restored");
            }
            // Not asked to touch a setting: leaves it as it is, also on Dispose.
            using (var scope = new TorchSettingsScope())
            {
                TorchRuntime.SetTf32(true, false);
                TorchRuntime.Threads = 1;
            }
            Assert.AreEqual((true, false), TorchRuntime.Tf32);
            Assert.AreEqual(1, TorchRuntime.Threads);
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TorchSettingsScope(threads: 0));
        }
        finally
        {
            TorchRuntime.SetTf32(matmul, cudnn);
            TorchRuntime.Threads = threads;
        }
    }

    [TestMethod]
    public void FineTuningLeavesTheProcessSettingsAsItFoundThem()
    {
        var (matmul, cudnn) = TorchRuntime.Tf32;
        int threads = TorchRuntime.Threads;
        try
        {
            TorchRuntime.SetTf32(false, true);
            TorchRuntime.Threads = 2;
            var o = TinyFt.Options(1); // Threads = 1
            using var source = TinyFt.Source(8);
            using var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 1);
            new MaeFineTuner(o).Train(model, source);
            Assert.AreEqual((false, true), TorchRuntime.Tf32);
            Assert.AreEqual(2, TorchRuntime.Threads);
        }
        finally
        {
            TorchRuntime.SetTf32(matmul, cudnn);
            TorchRuntime.Threads = threads;
        }
    }

    [TestMethod]
    public void FusedAttentionIsASettingOfEachModel()
    {
        using var a = new MaskedAutoencoder(TinyFt.Config);
        using var b = new MaskedAutoencoder(TinyFt.Config);
        Assert.IsTrue(a.FusedAttentionOnCuda && b.FusedAttentionOnCuda, "default on");
        a.FusedAttentionOnCuda = false;
        Assert.IsTrue(a.Encoder.blocks.Concat(a.decoder_blocks).All(x => !x.attn.FusedOnCuda), "encoder and decoder blocks");
        Assert.IsTrue(b.Encoder.blocks.Concat(b.decoder_blocks).All(x => x.attn.FusedOnCuda), "another model keeps its own");
        using var classifier = new VitClassifier(TinyFt.Config, 3);
        classifier.Encoder.FusedAttentionOnCuda = false;
        Assert.IsTrue(classifier.Encoder.blocks.All(x => !x.attn.FusedOnCuda));
    }
}
