using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using SkiaSharp;
using TorchSharp;

namespace Mae.MLNet.Tests.Training;

/// <summary>The defaults that fit the data and the machine: the preset chosen from the images' size, the recipes, the
/// --minutes plan from a measured step time (the measurement mocked: the plan is a function of it), precision auto.</summary>
[TestClass]
public class TimeBudgetTest
{
    [TestMethod]
    public void PlanFitsTheEpochsAndScalesTheWarmup()
    {
        // 10 minutes, 0.5 s per step, 40 steps per epoch: 20 s per epoch; 90 % of 600 s = 540 s → 27 epochs.
        var plan = MaeTimeBudget.Plan(10, 0.5, 40, maxEpochs: 400, warmupFraction: 0.1);
        Assert.AreEqual(27, plan.Epochs);
        Assert.AreEqual(2.7, plan.WarmupEpochs, 1e-12);
        Assert.IsFalse(plan.Capped);
        Assert.IsFalse(plan.OverBudget);
        Assert.AreEqual(540, plan.Estimated.TotalSeconds, 1e-9);
        // The schedule ends inside the box: the lr reaches its floor at the last planned step.
        Assert.AreEqual(0, MaeLrSchedule.At(plan.Epochs, 1e-3, 0, plan.WarmupEpochs, plan.Epochs), 1e-15);
    }

    [TestMethod]
    public void PlanCountsWorkOutsideTheSteps()
    {
        // 20 s of steps + 7 s of validation per epoch: floor(540 / 27) = 20 epochs.
        var plan = MaeTimeBudget.Plan(10, 0.5, 40, 400, 0.05, extraSecondsPerEpoch: 7);
        Assert.AreEqual(20, plan.Epochs);
        Assert.AreEqual(1.0, plan.WarmupEpochs, 1e-12);
        Assert.AreEqual(540, plan.Estimated.TotalSeconds, 1e-9);
    }

    [TestMethod]
    public void PlanIsCappedAndSaysSoAndNeverGoesBelowOneEpoch()
    {
        var capped = MaeTimeBudget.Plan(60, 0.01, 10, maxEpochs: 50, warmupFraction: 0.1);   // 32 400 epochs would fit
        Assert.AreEqual(50, capped.Epochs);
        Assert.AreEqual(5, capped.WarmupEpochs, 1e-12);
        Assert.IsTrue(capped.Capped);
        StringAssert.Contains(capped.Describe(256), "capped at 50 epochs");

        var over = MaeTimeBudget.Plan(1, 2.0, 100, 400, 0.1);   // one epoch is 200 s > 54 s
        Assert.AreEqual(1, over.Epochs);
        Assert.IsTrue(over.OverBudget);
        StringAssert.Contains(over.Describe(256), "longer than the box");
    }

    [TestMethod]
    public void PlanRejectsBadInputNamingIt()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeTimeBudget.Plan(0, 0.5, 40, 400, 0.1)).Message, "minutes");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeTimeBudget.Plan(10, double.NaN, 40, 400, 0.1)).Message, "time per step");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeTimeBudget.Plan(10, 0.5, 0, 400, 0.1)).Message, "at least one step");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeTimeBudget.Plan(10, 0.5, 40, 400, 1.5)).Message, "warm-up fraction");
    }

    [TestMethod]
    public void StepTimeIsTheMedianGapAfterTheSkippedSteps()
    {
        // Steps 0–6 end at these seconds. Steps 0 and 1 (start-up) are skipped: step 1 took 2.0 s. Steps 2–6 took
        // 0.5, 0.5, 0.4, 3.0 (a stall), 0.6 → median 0.5 (mean 1.0; with step 1 counted the median would be 0.55).
        var ends = new[] { 5.0, 7.0, 7.5, 8.0, 8.4, 11.4, 12.0 };
        Assert.AreEqual(0.5, MaeTimeBudget.SecondsPerStep(ends, skip: 2), 1e-12);
        Assert.ThrowsExactly<ArgumentException>(() => MaeTimeBudget.SecondsPerStep(new[] { 1.0, 2.0 }, skip: 2));
    }

    [TestMethod]
    public void PresetFollowsTheImagesSizeAndTheDevice()
    {
        Assert.AreEqual(MaeConfig.Nano32, MaeConfig.ForImages(32, 3, cuda: false).Config);
        Assert.AreEqual(MaeConfig.Nano32P2, MaeConfig.ForImages(32, 3, cuda: true).Config);
        Assert.AreEqual(MaeConfig.Mnist28, MaeConfig.ForImages(28, 1, cuda: false).Config);
        var grey32 = MaeConfig.ForImages(32, 1, cuda: false).Config;
        Assert.AreEqual((32, 4, 1), (grey32.ImageSize, grey32.PatchSize, grey32.InChannels));
        var mid = MaeConfig.ForImages(96, 3, cuda: false).Config;
        Assert.AreEqual((64, 8, 64), (mid.ImageSize, mid.PatchSize, mid.NumPatches));
        Assert.AreEqual(MaeConfig.VitBase16, MaeConfig.ForImages(375, 3, cuda: true).Config);
        var photoCpu = MaeConfig.ForImages(375, 3, cuda: false).Config;
        Assert.AreEqual((128, 16, 128), (photoCpu.ImageSize, photoCpu.PatchSize, photoCpu.EmbedDim));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeConfig.ForImages(32, 4, false));
        Assert.AreEqual(MaeConfig.Nano32, MaeConfig.Preset("nano32"));
        Assert.AreEqual(2, MaeConfig.Preset("NANO32-P2").PatchSize);
        // pico32: the benchmarks' p4-e96x4x3-d64x1x2 candidate (docs/benchmarks.md), 0.44 M encoder parameters.
        var pico = MaeConfig.Preset("pico32");
        Assert.AreEqual((32, 4, 3, 96, 4, 3, 64, 1, 2), (pico.ImageSize, pico.PatchSize, pico.InChannels, pico.EmbedDim, pico.Depth,
            pico.NumHeads, pico.DecoderEmbedDim, pico.DecoderDepth, pico.DecoderNumHeads));
        // Every listed name resolves, and to a valid config (the list and the switch are written separately).
        foreach (string name in MaeConfig.PresetNames) MaeConfig.Preset(name).Validate();
    }

    [TestMethod]
    public void DefaultFeaturesUseEverySmallEncodersBlocksAndTheLastFourOfADeepOne()
    {
        // The default linear-probe features (featurize, export, the quickstart): all of nano32's 6 blocks probed above its
        // last 4 (docs/results.md); the public 12- to 32-block models keep DINO's last 4.
        Assert.AreEqual(6, MaeConfig.Nano32.FeatureLayers);
        Assert.AreEqual(4, MaeConfig.Pico32.FeatureLayers);
        Assert.AreEqual(4, MaeConfig.VitBase16.FeatureLayers);
        Assert.AreEqual(4, MaeConfig.VitHuge14.FeatureLayers);
        Assert.AreEqual(2, (MaeConfig.Nano32 with { Depth = 2 }).FeatureLayers);
        Assert.AreEqual(4, (MaeConfig.Nano32 with { Depth = 7 }).FeatureLayers);
        foreach (string name in MaeConfig.PresetNames)
        {
            var config = MaeConfig.Preset(name);
            Assert.IsTrue(config.FeatureLayers is >= 1 and <= 6 && config.FeatureLayers <= config.Depth, name);
        }
    }

    [TestMethod]
    public void HeadersGiveTheMedianShorterSideAndTheChannels()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"mae-sizes-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(Path.Combine(folder, "a"));
            // Shorter sides 20, 30, 40 (a 40×90 portrait), 50, 60: median 40. One colour image → 3 channels.
            foreach (var (w, h, i) in new[] { (20, 25, 0), (30, 31, 1), (40, 90, 2), (80, 50, 3), (60, 60, 4) })
            {
                using var bitmap = new SKBitmap(w, h);
                bitmap.Erase(i == 2 ? SKColors.Red : SKColors.Gray);
                using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(folder, "a", $"{i}.png"), data.ToArray());
            }
            var sample = MaeImageFolder.SampleSizes(folder);
            Assert.AreEqual(new MaeImageFolder.SizeSample(5, 40, 3), sample);
            File.WriteAllText(Path.Combine(folder, "a", "5.png"), "not an image");   // passed over
            Assert.AreEqual(5, MaeImageFolder.SampleSizes(folder, 16).Files);
            Assert.AreEqual(MaeConfig.Nano32, MaeImageFolder.ChoosePreset(folder, cuda: false).Choice.Config);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [TestMethod]
    public void SmallImageRecipesScaleTheReferenceOnes()
    {
        var pt = MaePretrainRecipe.For(MaeConfig.Nano32);
        Assert.AreEqual(MaePretrainRecipe.SmallImages, pt);
        var options = pt.ApplyTo(new MaePretrainOptions { LearningRate = 1 });
        Assert.AreEqual((256, 400, 40.0), (options.BatchSize, options.Epochs, options.WarmupEpochs));
        Assert.AreEqual(2e-3, options.PeakLearningRate, 1e-15);   // blr 2e-3 × 256 / 256; the absolute lr was cleared
        Assert.AreEqual((32, 3, 0.35), (pt.Augmentation(MaeConfig.Nano32).OutputSize, pt.Augmentation(MaeConfig.Nano32).Channels, pt.Augmentation(MaeConfig.Nano32).ScaleMin));
        Assert.AreEqual(MaePretrainRecipe.Paper, MaePretrainRecipe.For(MaeConfig.VitBase16));
        Assert.AreEqual(0.2, MaePretrainRecipe.Paper.CropScaleMin);   // main_pretrain.py's RandomResizedCrop scale

        var ft = MaeFineTuneRecipe.For(MaeConfig.Nano32).ApplyTo(new MaeFineTuneOptions(), MaeConfig.Nano32);
        Assert.AreEqual(0.05, ft.DropPath, 1e-12);                 // 0.1 × 6 / 12
        Assert.AreEqual((0.0, 0.0), (ft.Mixup, ft.Cutmix));        // off: they lost to none on CIFAR-10 in every box tried
        Assert.IsFalse(ft.MixupActive);
        Assert.AreEqual(2e-3, ft.PeakLearningRate, 1e-15);         // blr 4e-3 × 128 / 256
        Assert.AreEqual((32, 0.6), (ft.Augmentation!.OutputSize, ft.Augmentation.ScaleMin));   // 0.6 beat 0.35 at 8, 10 and 29 epochs
        ft.Validate();
        // The reference recipe is MaeFineTuneOptions' own defaults.
        var defaults = new MaeFineTuneOptions();
        var reference = MaeFineTuneRecipe.Reference.ApplyTo(new MaeFineTuneOptions(), MaeConfig.VitBase16);
        Assert.AreEqual((defaults.BatchSize, defaults.BaseLearningRate, defaults.Epochs, defaults.WarmupEpochs, defaults.LayerDecay, defaults.DropPath, defaults.Mixup),
            (reference.BatchSize, reference.BaseLearningRate, reference.Epochs, reference.WarmupEpochs, reference.LayerDecay, reference.DropPath, reference.Mixup));
        var a = defaults.ResolveAugmentation(MaeConfig.VitBase16);
        Assert.AreEqual(a.ScaleMin, reference.Augmentation!.ScaleMin);
        // main_finetune.py's --aa rand-m9-mstd0.5-inc1 and --reprob 0.25, in both.
        foreach (var aug in new[] { a, reference.Augmentation })
        {
            Assert.AreEqual((2, 9.0, 0.5, 0.5, true), (aug.RandAugment!.Layers, aug.RandAugment.Magnitude, aug.RandAugment.MagnitudeStd,
                aug.RandAugment.Probability, aug.RandAugment.Increasing));
            Assert.AreEqual(0.25, aug.RandomErasingProbability);
        }
        // A 4-channel model gets no RandAugment by default (Pillow's ops are for L and RGB).
        Assert.IsNull(defaults.ResolveAugmentation(MaeConfig.VitBase16 with { InChannels = 4 }).RandAugment);
    }

    [TestMethod]
    public void PrecisionAutoIsBf16WhereItIsFast()
    {
        Assert.AreEqual(MaePrecision.Bf16, MaePrecision.Auto.Resolve(DeviceType.CUDA, cpuHasNativeBf16: false));
        Assert.AreEqual(MaePrecision.Bf16, MaePrecision.Auto.Resolve(DeviceType.CPU, cpuHasNativeBf16: true));
        Assert.AreEqual(MaePrecision.Fp32, MaePrecision.Auto.Resolve(DeviceType.CPU, cpuHasNativeBf16: false));
        Assert.AreEqual(MaePrecision.Fp32, MaePrecision.Fp32.Resolve(DeviceType.CUDA, cpuHasNativeBf16: true));
        // This machine's answer agrees with the kernel's own view of the CPU.
        if (File.Exists("/proc/cpuinfo") && System.Runtime.Intrinsics.X86.X86Base.IsSupported)
            Assert.AreEqual(File.ReadAllText("/proc/cpuinfo").Contains(" avx512_bf16"), Mae.MLNet.Runtime.TorchRuntime.CpuHasNativeBf16);
    }
}
