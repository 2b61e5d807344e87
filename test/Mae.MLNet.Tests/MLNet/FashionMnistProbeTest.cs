using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>The product pipeline on real images: Fashion-MNIST pixels → MaePretrain (no labels) → SDCA and L-BFGS linear probes,
/// beside the raw-pixel SDCA baseline. Small subset and a short pre-training run to fit the CI budget.</summary>
[TestClass]
public class FashionMnistProbeTest
{
    public sealed class Item
    {
        [VectorType(784)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    static IEnumerable<Item> Items(FashionMnist.Split split)
        => split.ImagesAsFloats().Zip(split.Labels, (p, l) => new Item { Pixels = p, Label = l });

    [TestMethod]
    public void PretrainThenLinearProbeBeatsChanceAndLearns()
    {
        Assert.IsTrue(FashionMnist.IsInstalled(DebianFashionMnist.Directory), "Fashion-MNIST is missing: sudo apt-get install dataset-fashion-mnist (.ci/run installs it).");
        var train = FashionMnist.Load("train", DebianFashionMnist.Directory, maxItems: 3000);
        var test = FashionMnist.Load("t10k", DebianFashionMnist.Directory, maxItems: 1000);
        var ml = new MLContext(seed: 0);
        var trainData = ml.Data.Cache(ml.Data.LoadFromEnumerable(Items(train)));
        var testData = ml.Data.Cache(ml.Data.LoadFromEnumerable(Items(test)));

        var config = MaeConfig.Mnist28 with { EmbedDim = 96, Depth = 4, NumHeads = 3, DecoderEmbedDim = 64, DecoderDepth = 1, DecoderNumHeads = 4 };
        var sw = Stopwatch.StartNew();
        var pretrain = ml.Transforms.MaePretrain(new MaePretrainEstimatorOptions
        {
            InputColumnName = "Pixels", OutputColumnName = "Features", Model = config, Pooling = MaePooling.Mean,
            Training = new Mae.MLNet.Pretraining.MaePretrainOptions
            {
                Epochs = 12, WarmupEpochs = 1, BatchSize = 64, LearningRate = 1.5e-3, Seed = 1, Device = MaeDevice.Cpu,
            },
            Augmentation = new Mae.MLNet.Input.MaeAugmentationOptions { OutputSize = 28, Channels = 1, ScaleMin = 0.5, HorizontalFlipProbability = 0.5 },
        });
        var featurizer = pretrain.Fit(trainData);
        double pretrainSeconds = sw.Elapsed.TotalSeconds;
        var epochs = featurizer.Pretraining!.EpochLosses;
        Console.WriteLine($"pre-training {pretrainSeconds:F1} s, epoch losses: {string.Join(", ", epochs.Select(l => l.ToString("F4")))}");
        Assert.IsTrue(epochs[^1] < 0.9 * epochs[0], $"the reconstruction loss should fall: {epochs[0]:F4} → {epochs[^1]:F4}");

        var probe = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features", maximumNumberOfIterations: 30));
        // SDCA passes over the data many times: cache the features as any ML.NET pipeline would.
        var features = ml.Data.Cache(featurizer.Transform(trainData));
        var probeModel = probe.Fit(features);
        var mae = ml.MulticlassClassification.Evaluate(probeModel.Transform(featurizer.Transform(testData)));

        var lbfgs = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("Label", "Features"));
        var maeLbfgs = ml.MulticlassClassification.Evaluate(lbfgs.Fit(features).Transform(featurizer.Transform(testData)));

        var raw = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Pixels", maximumNumberOfIterations: 30));
        var rawMetrics = ml.MulticlassClassification.Evaluate(raw.Fit(trainData).Transform(testData));
        Console.WriteLine($"linear probe on MAE features: SDCA {mae.MicroAccuracy:P1}, L-BFGS {maeLbfgs.MicroAccuracy:P1}; raw pixels (SDCA): {rawMetrics.MicroAccuracy:P1}; total {sw.Elapsed.TotalSeconds:F1} s");
        Assert.IsTrue(rawMetrics.MicroAccuracy > 0.70, "raw-pixel baseline");
        Assert.IsTrue(mae.MicroAccuracy > 0.70, $"MAE features must carry class information (chance is 10 %): {mae.MicroAccuracy:P1}");
        Assert.IsTrue(maeLbfgs.MicroAccuracy > 0.70, $"L-BFGS probe: {maeLbfgs.MicroAccuracy:P1}");
    }
}
