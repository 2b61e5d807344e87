using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Tests.FineTuning;
using Mae.MLNet.Tests.MLNet;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Training;

/// <summary>
/// Training steps no longer run inside a GC-free region (<c>GC.TryStartNoGCRegion</c> per step: a full blocking
/// collection per step, and the runtime kept every region's memory: a 1.2 M-parameter pre-training held 6.7 GB). The
/// hazard the region guarded against — a temporary libtorch Scalar finalized while a native call still uses it — is
/// gone because every Scalar the steps pass to libtorch is held (ScalarMath; <c>TorchSharpScalarTest</c> checks the
/// whole library's IL). Here the deterministic check over every kind of step: MAE, contrastive and FCMAE pre-training,
/// fine-tuning with everything on (mixup, cutmix, smoothing, drop path, weight decay, gradient clipping, evaluation).
/// </summary>
[TestClass]
public class TrainingWithoutForcedGcTest
{
    static readonly ConvNextV2Config Convnext = ConvNextV2Config.Atto with
    {
        ImageSize = 64, Dims = new[] { 8, 8, 8, 8 }, Depths = new[] { 1, 1, 1, 1 }, DecoderEmbedDim = 8,
    };

    /// <summary>Every kind of training step, a few of each; returns the optimizer steps taken.</summary>
    static long TrainEveryKind()
    {
        long steps = 0;
        var o = TinyRun.Options(2);
        o.WeightDecay = 0.05;
        using (var source = MaeImageSource.FromArrays(TinyRun.Images(16), 3, 16, 16))
        using (var model = MaePretrainer.CreateModel(TinyRun.Config, o))
            steps += new MaePretrainer(o).Train(model, source).OptimizerSteps;

        var c = TinyRun.Options(1);
        c.Objective = MaeObjective.Contrastive;
        using (var source = MaeImageSource.FromArrays(TinyRun.Images(8), 3, 16, 16))
        using (var model = MaePretrainer.CreateModel(TinyRun.Config, c))
            steps += new MaePretrainer(c).Train(model, source).OptimizerSteps;

        var f = TinyRun.Options(1);
        f.MaskRatio = 0.5;
        using (var source = MaeImageSource.FromArrays(TinyRun.Images(8, size: 64), 3, 64, 64))
        using (var model = MaePretrainer.CreateModel(Convnext, f))
            steps += new MaePretrainer(f).Train(model, source).OptimizerSteps;

        var ft = TinyFt.Options(2);
        ft.Mixup = 0.8; ft.Cutmix = 1.0; ft.MixupSwitchProbability = 0.5; ft.LabelSmoothing = 0.1; ft.WeightDecay = 0.05; ft.ClipGradNorm = 1.0;
        using (var train = TinyFt.Source(24))
        using (var val = TinyFt.Source(8, seed: 9))
        using (var model = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 1))
            steps += new MaeFineTuner(ft).Train(model, train, val).OptimizerSteps;
        return steps;
    }

    [TestMethod]
    public void TrainingLeavesNoScalarToTheFinalizer()
    {
        TrainEveryKind(); // warm up: statics and lazily created Scalars exist before counting
        using var watch = new FinalizedScalars();
        long steps = 0;
        long fromTraining = watch.FinalizedDuring(() => steps = TrainEveryKind());
        long fromControl = watch.FinalizedByControl();
        Console.WriteLine($"Scalars finalized: {fromTraining} from {steps} training steps of five kinds, {fromControl} from 20 tensor + tensor");
        Assert.IsTrue(watch.Enabled, "the runtime's GC events must reach the listener");
        Assert.IsGreaterThanOrEqualTo(20L, fromControl, "the listener must see unheld temporaries finalized");
        Assert.AreEqual(18L, steps, "8 MAE, 2 contrastive, 2 FCMAE and 6 fine-tuning steps");
        Assert.AreEqual(0L, fromTraining, "training created libtorch Scalars that nothing held");
    }

    [TestMethod]
    public void TrainingStepsForceNoGen2Collections()
    {
        var o = TinyRun.Options(1);
        using var source = MaeImageSource.FromArrays(TinyRun.Images(4 * 60), 3, 16, 16);
        using var model = MaePretrainer.CreateModel(TinyRun.Config, o);
        int before = GC.CollectionCount(2);
        long steps = new MaePretrainer(o).Train(model, source).OptimizerSteps;
        int collections = GC.CollectionCount(2) - before;
        Console.WriteLine($"{steps} pre-training steps: {collections} gen-2 collections");
        Assert.AreEqual(60L, steps);
        Assert.IsLessThan(10, collections, $"{collections} gen-2 collections in {steps} steps (one per step when each entered a GC-free region)");
    }
}
