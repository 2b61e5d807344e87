using Mae.MLNet.TrainHost;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using static TorchSharp.torch;

using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Pretraining;

/// <summary>Pre-training with <see cref="MaeObjective.Contrastive"/>: two augmented views per image through the same
/// engine (accumulation, bf16, checkpoints), and an exact resume that restores the projection head.</summary>
[TestClass]
public class ContrastivePretrainTest
{
    static MaePretrainOptions Options(int epochs, string? dir, MaePrecision precision) => TinyRun.Options(epochs, dir).Also(o =>
    {
        o.Objective = MaeObjective.Contrastive;
        o.ContrastiveWeight = 0.5;
        o.AccumIter = 2;
        o.Precision = precision;
        o.Transform = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 16, Channels = 3, ScaleMin = 0.5 });
    });

    [TestMethod]
    [DataRow(MaePrecision.Fp32)]
    [DataRow(MaePrecision.Bf16)]
    public void ResumedRunEqualsTheUninterruptedOne(MaePrecision precision)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mae-contrastive-{Guid.NewGuid():N}");
        try
        {
            using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
            using var straight = MaePretrainer.CreateModel(TinyRun.Config, Options(3, null, precision));
            var full = new MaePretrainer(Options(3, null, precision)).Train(straight, source);
            Assert.IsTrue(full.StepLosses.All(float.IsFinite));

            using (var first = MaePretrainer.CreateModel(TinyRun.Config, Options(3, dir, precision)))
                new MaePretrainer(Options(1, dir, precision)).Train(first, source);
            using var resumed = MaePretrainer.CreateModel(TinyRun.Config, Options(3, dir, precision));
            var rest = new MaePretrainer(Options(3, dir, precision).Also(o => o.Resume = true)).Train(resumed, source);

            StringAssert.EndsWith(rest.ResumedFrom, "checkpoint-0001.maeckpt");
            CollectionAssert.AreEqual(full.StepLosses.ToArray(), rest.StepLosses.ToArray(), "step losses after the resume");
            var a = straight.state_dict();
            foreach (var (name, t) in resumed.state_dict())
                Assert.IsTrue(t.eq(a[name]).all().item<bool>(), $"{name} differs after the resume");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The contrastive term changes training (same seed, same views), and a plain-MAE checkpoint is not
    /// resumed as a contrastive run.</summary>
    [TestMethod]
    public void TheTermMattersAndObjectivesDoNotMixOnResume()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mae-contrastive-{Guid.NewGuid():N}");
        try
        {
            using var source = MaeImageSource.FromArrays(TinyRun.Images(24), 3, 16, 16);
            using var m0 = MaePretrainer.CreateModel(TinyRun.Config, Options(1, null, MaePrecision.Fp32));
            var zero = new MaePretrainer(Options(1, null, MaePrecision.Fp32).Also(o => o.ContrastiveWeight = 0)).Train(m0, source);
            using var m1 = MaePretrainer.CreateModel(TinyRun.Config, Options(1, null, MaePrecision.Fp32));
            var half = new MaePretrainer(Options(1, null, MaePrecision.Fp32)).Train(m1, source);
            Assert.IsTrue(half.StepLosses[0] > zero.StepLosses[0], "the first step adds 0.5 × InfoNCE (> 0) to the same reconstruction loss");

            using (var plain = MaePretrainer.CreateModel(TinyRun.Config, TinyRun.Options(1, dir)))
                new MaePretrainer(TinyRun.Options(1, dir)).Train(plain, source);
            using var next = MaePretrainer.CreateModel(TinyRun.Config, Options(2, dir, MaePrecision.Fp32));
            var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
                new MaePretrainer(Options(2, dir, MaePrecision.Fp32).Also(o => { o.Resume = true; o.AccumIter = 1; })).Train(next, source));
            StringAssert.Contains(e.Message, "Mae objective");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
    }
}

static class OptionsExtensions
{
    public static MaePretrainOptions Also(this MaePretrainOptions o, Action<MaePretrainOptions> change)
    {
        var c = o.Clone();
        change(c);
        return c;
    }
}
