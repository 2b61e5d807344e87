using System.Diagnostics;
using Mae.MLNet.Data;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Mae.MLNet.Training.Augmentation;
using Microsoft.ML;
using Microsoft.ML.Data;

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

    static IEnumerable<Item> Items(FashionMnist.Split split)
        => split.ImagesAsFloats().Zip(split.Labels, (p, l) => new Item { Pixels = p, Label = l });

    internal static readonly MaeConfig Config = MaeConfig.Mnist28 with
    {
        EmbedDim = 64, Depth = 3, NumHeads = 4, DecoderEmbedDim = 32, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    [TestMethod]
    public void FineTuningBeatsLinearProbeOnFrozenFeatures()
    {
        Assert.IsTrue(FashionMnist.IsInstalled(), "Fashion-MNIST is missing: sudo apt-get install dataset-fashion-mnist (.ci/run installs it).");
        int nTrain = int.Parse(Environment.GetEnvironmentVariable("MAE_FT_NTRAIN") ?? "2000");
        int ptEpochs = int.Parse(Environment.GetEnvironmentVariable("MAE_FT_PT_EPOCHS") ?? "4");
        int ftEpochs = int.Parse(Environment.GetEnvironmentVariable("MAE_FT_EPOCHS") ?? "6");
        var train = FashionMnist.Load("train", maxItems: nTrain);
        var test = FashionMnist.Load("t10k", maxItems: 1000);
        var shape = new MaeImageShape(1, 28, 28);
        var sw = Stopwatch.StartNew();

        // 1. Short MAE pre-training (engine), no labels.
        var pt = new MaePretrainOptions
        {
            Epochs = ptEpochs, WarmupEpochs = 1, BatchSize = 64, LearningRate = 1.5e-3, Seed = 1, Device = MaeDevice.Cpu,
            NormPixLoss = true, LogEvery = 1000,
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
        var probe = ml.Transforms.MaeFeaturize("Features", "Pixels", mae.Encoder, MaePooling.Mean, batchSize: 256, device: MaeDevice.Cpu)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features", maximumNumberOfIterations: 50));
        var probeMetrics = ml.MulticlassClassification.Evaluate(probe.Fit(trainData).Transform(testData));
        double probeSeconds = sw.Elapsed.TotalSeconds - ptSeconds;

        // 3. Fine-tuning of the same encoder (engine).
        var ft = new MaeFineTuneOptions
        {
            Epochs = ftEpochs, WarmupEpochs = 1, BatchSize = 64, LearningRate = 2e-3, Seed = 2, Device = MaeDevice.Cpu, DropPath = 0.1,
            LayerDecay = double.Parse(Environment.GetEnvironmentVariable("MAE_FT_LD") ?? "0.75", System.Globalization.CultureInfo.InvariantCulture), LogEvery = 1000,
            Augmentation = new MaeAugmentationOptions { OutputSize = 28, Channels = 1, ScaleMin = double.Parse(Environment.GetEnvironmentVariable("MAE_FT_SCALE") ?? "0.5", System.Globalization.CultureInfo.InvariantCulture) },
        };
        using var classifier = MaeFineTuner.FromEncoder(mae.Encoder, 10, seed: 2);
        using var trainSource = MaeLabeledImageSource.FromArrays(train.ImagesAsFloats(), train.Labels.Select(l => (long)l), shape);
        using var testSource = MaeLabeledImageSource.FromArrays(test.ImagesAsFloats(), test.Labels.Select(l => (long)l), shape);
        var ftResult = new MaeFineTuner(ft).Train(classifier, trainSource);
        var (ftAccuracy, _) = MaeFineTuner.Evaluate(classifier, testSource, MaeFineTuner.EvaluationTransform(ft.ResolveAugmentation(Config)));
        double ftSeconds = sw.Elapsed.TotalSeconds - ptSeconds - probeSeconds;

        Console.WriteLine($"n={nTrain}: pre-train {ptEpochs} ep {ptSeconds:F1} s (loss {ptResult.EpochLosses[0]:F3} → {ptResult.EpochLosses[^1]:F3}); " +
                          $"probe {probeMetrics.MicroAccuracy:P1} ({probeSeconds:F1} s); fine-tune {ftEpochs} ep {ftAccuracy:P1} ({ftSeconds:F1} s); " +
                          $"ft epoch losses {string.Join(", ", ftResult.EpochLosses.Select(l => l.ToString("F3")))}");
        Assert.IsTrue(ftAccuracy > probeMetrics.MicroAccuracy + 0.03, $"fine-tune {ftAccuracy:P1} vs probe {probeMetrics.MicroAccuracy:P1}");
    }
}
