using System.Diagnostics;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.FineTuning;

/// <summary>Real data: on a small Fashion-MNIST subset, a short MAE pre-training, then (a) an SDCA linear probe on
/// the frozen encoder's features and (b) MaeFineTune of the same encoder; fine-tuning must win by a clear margin.</summary>
[TestClass]
public class FashionMnistFineTuneTest
{
    public sealed class Item
    {
        [VectorType(784)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    public sealed class FeatureRow
    {
        [VectorType(64)] public float[] Features { get; set; } = Array.Empty<float>(); // Config.EmbedDim
        public uint Label { get; set; }
    }

    static IEnumerable<Item> Items(FashionMnist.Split split)
        => split.ImagesAsFloats().Zip(split.Labels, (p, l) => new Item { Pixels = p, Label = l });

    internal static readonly MaeConfig Config = MaeConfig.Mnist28 with
    {
        EmbedDim = 64, Depth = 3, NumHeads = 4, DecoderEmbedDim = 32, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    [TestMethod]
    public void FineTuningBeatsLinearProbeOnFrozenFeatures()
    {
        Assert.IsTrue(FashionMnist.IsInstalled(DebianFashionMnist.Directory), "Fashion-MNIST is missing: sudo apt-get install dataset-fashion-mnist (.ci/run installs it).");
        const int nTrain = 2000, ptEpochs = 4, ftEpochs = 10;
        // One libtorch thread: on a machine shared with other jobs, two spinning threads on two busy cores ran ~10×
        // slower here (pre-training 50 s instead of 4 s).
        const int Threads = 1;
        var train = FashionMnist.Load("train", DebianFashionMnist.Directory, maxItems: nTrain);
        var test = FashionMnist.Load("t10k", DebianFashionMnist.Directory, maxItems: 1000);
        int threadsBefore = TorchRuntime.Threads;
        TorchRuntime.Threads = Threads;
        try { Run(train, test, ptEpochs, ftEpochs); }
        finally { TorchRuntime.Threads = threadsBefore; }
    }

    static void Run(FashionMnist.Split train, FashionMnist.Split test, int ptEpochs, int ftEpochs)
    {
        const int Threads = 1;
        int nTrain = train.Count;
        var shape = new MaeImageShape(1, 28, 28);
        var sw = Stopwatch.StartNew();

        // 1. Short MAE pre-training (engine), no labels.
        var pt = new MaePretrainOptions
        {
            Epochs = ptEpochs, WarmupEpochs = 1, BatchSize = 64, LearningRate = 1.5e-3, Seed = 1, Device = MaeDevice.Cpu,
            LogEvery = 1000, Threads = Threads,
            Transform = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 28, Channels = 1, ScaleMin = 0.5 }),
        };
        using var images = MaeImageSource.FromArrays(train.ImagesAsFloats(), shape);
        using var mae = MaePretrainer.CreateModel(Config, pt);
        var ptResult = new MaePretrainer(pt).Train(mae, images);
        double ptSeconds = sw.Elapsed.TotalSeconds;

        // 2. Linear probe: SDCA on the frozen encoder's mean-pooled features.
        var ml = new MLContext(seed: 0);
        var trainData = ml.Data.LoadFromEnumerable(Items(train));
        var testData = ml.Data.LoadFromEnumerable(Items(test));
        // Features are computed once on this thread (MaeFeaturize, batched) and handed to SDCA as plain vectors.
        var featurizer = ml.Transforms.MaeFeaturize("Features", "Pixels", mae.Encoder, MaePooling.Mean, batchSize: 256, device: MaeDevice.Cpu).Fit(trainData);
        IDataView Featurized(IDataView d) => ml.Data.LoadFromEnumerable(
            ml.Data.CreateEnumerable<FeatureRow>(featurizer.Transform(d), reuseRowObject: false).ToList());
        var probe = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(new Microsoft.ML.Trainers.SdcaMaximumEntropyMulticlassTrainer.Options
            {
                LabelColumnName = "Label", FeatureColumnName = "Features", MaximumNumberOfIterations = 50, NumberOfThreads = 1,
            }));
        var probeMetrics = ml.MulticlassClassification.Evaluate(probe.Fit(Featurized(trainData)).Transform(Featurized(testData)));
        double probeSeconds = sw.Elapsed.TotalSeconds - ptSeconds;

        // 3. Fine-tuning of the same encoder with the ML.NET trainer.
        var ft = new MaeFineTuneOptions
        {
            Epochs = ftEpochs, WarmupEpochs = 1, BatchSize = 64, LearningRate = 5e-3, Seed = 2, Device = MaeDevice.Cpu, DropPath = 0.1,
            LayerDecay = 0.75, LogEvery = 1000, Threads = Threads,
            Augmentation = new MaeAugmentationOptions { OutputSize = 28, Channels = 1, ScaleMin = 0.8 },
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options { Encoder = mae.Encoder, Training = ft }));
        var model = pipeline.Fit(trainData);
        var predictions = model.Transform(testData);
        var ftMetrics = ml.MulticlassClassification.Evaluate(predictions);
        double ftAccuracy = ftMetrics.MicroAccuracy;
        double ftSeconds = sw.Elapsed.TotalSeconds - ptSeconds - probeSeconds;
        var ftResult = model.LastTransformer.FineTuning!;

        Console.WriteLine($"n={nTrain}: pre-train {ptEpochs} ep {ptSeconds:F1} s (loss {ptResult.EpochLosses[0]:F3} → {ptResult.EpochLosses[^1]:F3}); " +
                          $"probe {probeMetrics.MicroAccuracy:P1} ({probeSeconds:F1} s); fine-tune {ftEpochs} ep {ftAccuracy:P1} ({ftSeconds:F1} s); " +
                          $"ft epoch losses {string.Join(", ", ftResult.EpochLosses.Select(l => l.ToString("F3")))}");
        Assert.IsTrue(ptResult.EpochLosses[^1] < 0.9 * ptResult.EpochLosses[0], "the reconstruction loss falls");
        Assert.IsTrue(probeMetrics.MicroAccuracy > 0.4, $"the frozen features carry class information (chance 10 %): {probeMetrics.MicroAccuracy:P1}");
        Assert.IsTrue(ftAccuracy > probeMetrics.MicroAccuracy + 0.05, $"fine-tuning {ftAccuracy:P1} must beat the linear probe {probeMetrics.MicroAccuracy:P1} by > 5 points");

        // 4. The fine-tuned pipeline saved to a model zip and loaded in a fresh MLContext predicts the same classes.
        var zip = new MemoryStream();
        ml.Model.Save(model, trainData.Schema, zip);
        zip.Position = 0;
        var fresh = new MLContext(seed: 1);
        var loaded = fresh.Model.Load(zip, out _);
        var reloaded = fresh.Data.CreateEnumerable<Predicted>(loaded.Transform(testData), reuseRowObject: false).ToList();
        var original = ml.Data.CreateEnumerable<Predicted>(predictions, reuseRowObject: false).ToList();
        int same = original.Zip(reloaded).Count(z => z.First.PredictedLabel == z.Second.PredictedLabel);
        double worst = original.Zip(reloaded).Max(z => z.First.Score.Zip(z.Second.Score).Max(s => Math.Abs(s.First - s.Second)));
        Console.WriteLine($"reloaded zip: {same}/{original.Count} identical predictions, max |score difference| {worst:E2}, " +
                          $"accuracy {fresh.MulticlassClassification.Evaluate(loaded.Transform(testData)).MicroAccuracy:P1}");
        Assert.AreEqual(original.Count, same, "the reloaded model predicts every test image's class as before");
        Assert.IsTrue(worst <= 1e-5, $"scores differ by {worst:E2} after reload");
    }

    public sealed class Predicted
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }
}
