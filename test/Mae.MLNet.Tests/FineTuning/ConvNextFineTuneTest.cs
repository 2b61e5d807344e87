using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.FineTuning;

/// <summary>ConvNeXt V2 fine-tuning on the shared fine-tuner: two steps equal the official ConvNeXt-V2 recipe's
/// (fixture from its main_finetune.py / optim_factory.py with torch's AdamW), a tiny model learns a synthetic task and
/// resumes exactly, and the ML.NET trainer takes a ConvNeXt weights file and saves a zip that scores as it does.</summary>
[TestClass]
public class ConvNextFineTuneTest
{
    /// <summary>Fixture <c>convnextv2_ft</c>: the official dense ConvNeXtV2 (depths 1,1,2,1, dims 8…24, 4 classes, 64 px)
    /// after two AdamW steps with layer decay 0.7 ('single' ids), weight decay 0.05 on the official groups, label
    /// smoothing 0.1, lr 1e-2 then 5e-3. Ours: the same weights, no augmentation, two epochs of one step (cosine: lr, lr/2).</summary>
    [TestMethod]
    public void TwoStepsMatchTheOfficialConvNextV2Recipe()
    {
        using var fx = new ConvNextFixture("convnextv2_ft");
        var config = fx.Config;
        int classes = int.Parse(fx.Metadata["num_classes"]);
        using var model = new ConvNextV2(config, classes);
        fx.LoadInto(model, "param.");
        var images = fx["input.images"];
        var labels = fx["input.labels"].to(int64);
        var rows = Enumerable.Range(0, 2).Select(i => images[i].flatten().data<float>().ToArray()).ToList();
        using var source = MaeLabeledImageSource.FromArrays(rows, labels.data<long>().ToArray(), new MaeImageShape(3, 64, 64));
        var o = new MaeFineTuneOptions
        {
            Epochs = 2, WarmupEpochs = 0, BatchSize = 2, LearningRate = 1e-2, MinLearningRate = 0, WeightDecay = 0.05, LayerDecay = 0.7,
            DropPath = 0, LabelSmoothing = 0.1, Seed = 1, Device = MaeDevice.Cpu, Threads = 1,
            // The fixture's images are the network's input: no crop, flip, clamp or normalisation.
            Augmentation = new MaeAugmentationOptions
            {
                OutputSize = 64, Channels = 3, RandomResizedCrop = false, HorizontalFlipProbability = 0, ClampToUnitRange = false,
                Normalization = PixelNormalization.Identity(3),
            },
        };
        var result = new MaeFineTuner(o).Train(model, source);
        Assert.AreEqual(2, result.OptimizerSteps);
        var losses = fx["out.losses"].data<float>().ToArray();
        Assert.AreEqual(losses[0], result.StepLosses[0], 1e-5, "first loss");
        Assert.AreEqual(losses[1], result.StepLosses[1], 1e-5, "second loss (after the first step)");
        // Each weight's move against the reference's, relative to the largest step its group can take (lr × scale): two
        // Adam steps move an element by at most ~1.5 × lr × scale, so a wrong group, scale, decay or gradient shows in
        // most elements. An element whose two gradients nearly cancel in Adam's first moment amplifies float32 rounding
        // (here 1 of 14 k elements moved 1.2 % differently), hence a loose bound per element and a tight one for 99.9 %.
        int compared = 0;
        long elements = 0, loose = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            using var scope = NewDisposeScope();
            var before = fx["param." + name];
            var ours = p.detach() - before;
            var theirs = fx["after." + name] - before;
            double step = 1e-2 * Math.Pow(0.7, model.NumLayers - model.LayerId(name));
            var diff = (ours - theirs).abs();
            Assert.IsTrue(diff.max().item<float>() <= 0.05 * step, $"{name}: moves differ by {diff.max().item<float>():E2} (lr × scale = {step:E2})");
            Assert.IsTrue(theirs.abs().max().item<float>() > 0.5 * step, $"{name}: the reference moved it by lr × scale");
            loose += diff.gt(1e-3 * step).sum().item<long>();
            elements += diff.numel();
            compared++;
        }
        Assert.IsTrue(loose <= elements / 1000, $"{loose} of {elements} elements moved more than 0.1 % of a step differently");
        Assert.AreEqual(fx.Tensors.Keys.Count(k => k.StartsWith("after.")), compared);
    }

    internal static readonly ConvNextV2Config Tiny = new()
    {
        ImageSize = 32, InChannels = 1, Depths = new[] { 1, 1, 1, 1 }, Dims = new[] { 8, 16, 16, 24 }, ConvMlp = true,
    };

    /// <summary>32×32 grey images: a bright band in one of three places (the class) over noise.</summary>
    internal static (List<float[]> Images, List<long> Labels) Bands(int n, int seed)
    {
        var rng = new Random(seed);
        var images = new List<float[]>();
        var labels = new List<long>();
        for (int i = 0; i < n; i++)
        {
            int k = i % 3;
            var img = new float[32 * 32];
            for (int j = 0; j < img.Length; j++) img[j] = (float)(rng.NextDouble() * 0.3);
            for (int y = 11 * k; y < Math.Min(32, 11 * k + 10); y++)
                for (int x = 0; x < 32; x++) img[y * 32 + x] = 0.9f;
            images.Add(img);
            labels.Add(k);
        }
        return (images, labels);
    }

    static MaeLabeledImageSource Source(int n, int seed)
    {
        var (images, labels) = Bands(n, seed);
        return MaeLabeledImageSource.FromArrays(images, labels, new MaeImageShape(1, 32, 32));
    }

    internal static MaeFineTuneOptions Options(int epochs) => new()
    {
        Epochs = epochs, WarmupEpochs = 0.5, BatchSize = 8, LearningRate = 4e-3, Seed = 3, Device = MaeDevice.Cpu, Threads = 1,
        LogEvery = 1, DropPath = 0.1, LayerDecay = 0.8,
        Augmentation = new MaeAugmentationOptions { OutputSize = 32, Channels = 1, ScaleMin = 0.8, HorizontalFlipProbability = 0.5 },
    };

    [TestMethod]
    public void LearnsASyntheticTaskAndResumesExactly()
    {
        using var dir = new TempDir();
        using var train = Source(48, seed: 7);
        using var val = Source(24, seed: 99);
        using var straight = MaeFineTuner.FromScratch(Tiny, 3, seed: 3);
        var full = new MaeFineTuner(Options(4)).Train(straight, train, val);
        Assert.IsTrue(full.BestValidationAccuracy > 0.6, $"the synthetic task is learnable (chance 1/3): best validation accuracy {full.BestValidationAccuracy:P0}");
        Assert.AreEqual(0.0, straight.DropPathRate, "the caller's drop path is restored");

        var o1 = Options(4);
        o1.CheckpointDir = dir.Path;
        using (var first = MaeFineTuner.FromScratch(Tiny, 3, seed: 3))
        {
            using var cts = new CancellationTokenSource();
            var progress = new SyncFtProgress(p => { if (p.EndOfEpoch && p.Epoch == 1) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => new MaeFineTuner(o1).Train(first, train, val, progress, cts.Token));
        }
        string latest = MaeFineTuneCheckpoint.FindLatest(dir.Path)!;
        using (var held = MaeFineTuneCheckpoint.Load(latest)) Assert.IsInstanceOfType<ConvNextV2>(held);   // one read says which
        Assert.ThrowsExactly<MaeTrainingCheckpointException>(() => MaeFineTuneCheckpoint.LoadModel(latest));
        var o2 = Options(4);
        o2.CheckpointDir = dir.Path;
        o2.Resume = true;
        using var resumed = MaeFineTuner.FromScratch(Tiny, 3, seed: 42);   // another init: the checkpoint replaces it
        var r = new MaeFineTuner(o2).Train(resumed, train, val);
        StringAssert.EndsWith(r.ResumedFrom, "finetune-0002.maeft");
        CollectionAssert.AreEqual(full.StepLosses.ToArray(), r.StepLosses.ToArray());
        foreach (var ((name, p), (_, q)) in straight.named_parameters().Zip(resumed.named_parameters()))
            Assert.IsTrue(p.eq(q).all().item<bool>(), name);
        using var fromFile = MaeFineTuneCheckpoint.LoadConvNextV2(MaeFineTuneCheckpoint.FindLatest(dir.Path)!);
        Assert.AreEqual(Tiny, fromFile.Config);
        // A ViT run refuses the ConvNeXt checkpoint, naming both.
        var o3 = TinyFt.Options(4);
        o3.CheckpointDir = dir.Path;
        o3.Resume = true;
        using var vit = MaeFineTuner.FromScratch(TinyFt.Config, 3, seed: 1);
        using var vitData = TinyFt.Source(16);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new MaeFineTuner(o3).Train(vit, vitData));
        StringAssert.Contains(e.Message, "ConvNeXt V2");
    }

    [TestMethod]
    public void FromEncoderKeepsTheEncoderAndStartsTheOfficialHead()
    {
        TorchRuntime.Seed(5);
        using var encoder = new ConvNextV2(Tiny with { ImageSize = 64 });     // 0 classes: an encoder with head.norm
        using var model = MaeFineTuner.FromEncoder(encoder, 3, seed: 1, imageSize: 32);
        Assert.AreEqual(32, model.Config.ImageSize);
        var source = encoder.state_dict();
        foreach (var (name, t) in model.state_dict())
            if (!name.StartsWith("head.fc.")) Assert.IsTrue(t.eq(source[name]).all().item<bool>(), name);
        var w = model.head!.fc!.weight!;
        Assert.AreEqual(0.0, model.head.fc.bias!.abs().max().item<float>());
        Assert.IsTrue(w.std().item<float>() is > 1e-5f and < 3e-5f, $"head std {w.std().item<float>():E2}, expected ≈ 2e-5");
        using var data = Source(8, 1);
        var e = Assert.ThrowsExactly<ArgumentException>(() => new MaeFineTuner(Options(1)).Train(encoder, data));
        StringAssert.Contains(e.Message, "0 classes");
    }

    public sealed class Row
    {
        [VectorType(32 * 32)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public string Name { get; set; } = "";
    }

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    static IDataView Data(MLContext ml, int n, int seed)
    {
        var (images, labels) = Bands(n, seed);
        string[] names = { "top", "middle", "bottom" };
        return ml.Data.LoadFromEnumerable(images.Zip(labels, (p, l) => new Row { Pixels = p, Name = names[l] }));
    }

    /// <summary>MaeFineTune from a ConvNeXt weights file (what <c>mae pretrain --model convnextv2-*</c> writes): the
    /// transformer is a ConvNeXt classifier; its zip (ONNX network + ML.NET head) scores as it does after loading.</summary>
    [TestMethod]
    public void MlNetTrainerTakesConvNextWeightsAndItsZipScoresTheSame()
    {
        using var dir = new TempDir();
        string weights = Path.Combine(dir.Path, "convnextv2.safetensors");
        TorchRuntime.Seed(11);
        using (var encoder = new ConvNextV2(Tiny)) MaeWeightFile.SaveConvNextV2(encoder, weights);
        Assert.IsTrue(MaeWeightFile.HoldsConvNextV2(weights));
        var ml = new MLContext(seed: 0);
        var train = Data(ml, 48, seed: 7);
        var model = ml.Transforms.Conversion.MapValueToKey("Label", "Name")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
            {
                WeightsPath = weights, ImageSize = 32, Training = Options(3), Normalization = PixelNormalization.Default(1),
            }))
            .Fit(train);
        var classifier = ((IEnumerable<ITransformer>)model).OfType<MaeClassifierTransformer>().Single();
        Assert.IsNotNull(classifier.ConvNext);
        Assert.ThrowsExactly<InvalidOperationException>(() => classifier.Model);
        Assert.AreEqual(3, classifier.ConvNext.NumClasses);
        var test = Data(ml, 12, seed: 5);
        var before = ml.Data.CreateEnumerable<Prediction>(model.Transform(test), reuseRowObject: false).ToList();
        string zip = Path.Combine(dir.Path, "model.zip");
        ml.Model.Save(model, train.Schema, zip);
        var loaded = new MLContext(seed: 1).Model.Load(zip, out _);
        var after = ml.Data.CreateEnumerable<Prediction>(loaded.Transform(test), reuseRowObject: false).ToList();
        double worst = 0;
        for (int i = 0; i < before.Count; i++)
        {
            Assert.AreEqual(before[i].PredictedLabel, after[i].PredictedLabel, $"row {i}");
            for (int k = 0; k < 3; k++) worst = Math.Max(worst, Math.Abs(before[i].Score[k] - after[i].Score[k]));
        }
        Console.WriteLine($"max |score difference| after reload: {worst:E2}");
        Assert.IsTrue(worst <= 1e-5, $"scores differ by {worst:E2} after reload");
    }
}
