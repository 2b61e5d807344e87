using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.TrainHost;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.Tests.Input;

/// <summary>MaePretrain, MaeFeaturize and MaeFineTune read a column of image paths (text) or of encoded bytes
/// (LoadRawImageBytes) as well as pixel vectors and MLImages.</summary>
[TestClass]
public class MLNetDoorsTest
{
    public sealed class PathRow
    {
        public string Path { get; set; } = "";
        public string Name { get; set; } = "";
    }

    static (MLContext Ml, IDataView Data, List<string> Paths) Folder(TempDir dir, int n)
    {
        var paths = InputTestUtil.WriteJpegs(dir.Path, n, minSide: 24, maxSide: 50);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(paths.Select((p, i) => new PathRow { Path = p, Name = i % 2 == 0 ? "even" : "odd" }));
        return (ml, data, paths);
    }

    static float[][] Features(IDataView scored, string column = "Features")
        => scored.GetColumn<VBuffer<float>>(column).Select(v => v.DenseValues().ToArray()).ToArray();

    [TestMethod]
    public void PretrainOnPathsThenFeaturizePathsBytesAndPixelsAlike()
    {
        using var dir = new TempDir();
        var (ml, data, paths) = Folder(dir, 12);
        var options = new MaePretrainEstimatorOptions
        {
            InputColumnName = "Path", Model = TinyRun.Config,
            Training = new MaePretrainOptions { Epochs = 2, BatchSize = 4, WarmupEpochs = 1, Device = MaeDevice.Cpu, Seed = 3 },
            ImageInput = new MaeImageInputOptions { Workers = 2 },
        };
        var featurizer = ml.Transforms.MaePretrain(options).Fit(data);
        Assert.AreEqual(6, featurizer.Pretraining!.StepLosses.Count); // 2 epochs × 12 / 4: every path was read
        Assert.IsTrue(featurizer.Pretraining.StepLosses.All(float.IsFinite));

        var fromPaths = Features(featurizer.Transform(data));
        Assert.AreEqual(12, fromPaths.Length);
        Assert.AreEqual(TinyRun.Config.EmbedDim, fromPaths[0].Length);

        // The same images as raw bytes (ML.NET's LoadRawImageBytes) give the same features.
        var bytesView = ml.Transforms.LoadRawImageBytes("Bytes", null, "Path").Fit(data).Transform(data);
        var byteFeaturizer = ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions { InputColumnName = "Bytes", Device = MaeDevice.Cpu,
            Normalization = featurizer.Normalization }, featurizer.Encoder).Fit(bytesView);
        var fromBytes = Features(byteFeaturizer.Transform(bytesView));
        for (int i = 0; i < 12; i++) CollectionAssert.AreEqual(fromPaths[i], fromBytes[i], $"row {i}: bytes vs paths");

        // And as pixel vectors made by the file source's evaluation transform ([0, 1], CHW).
        var source = MaeImageFileSource.FromPaths(paths, new MaeImageInputOptions { Augmentation = { OutputSize = 16, Normalization = PixelNormalization.Identity(3) } });
        var pixels = new List<float[]>();
        foreach (var t in source.Batches(new MaeEpochPlan { BatchSize = 12, Training = false }))
            using (t) for (int i = 0; i < 12; i++) pixels.Add(t[i].data<float>().ToArray());
        var pixelView = ml.Data.LoadFromEnumerable(pixels.Select(p => new PixelRow { Pixels = p }));
        var fromPixels = Features(ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions { InputColumnName = "Pixels", Device = MaeDevice.Cpu,
            Normalization = featurizer.Normalization }, featurizer.Encoder).Fit(pixelView).Transform(pixelView));
        for (int i = 0; i < 12; i++)
            for (int k = 0; k < fromPixels[i].Length; k++)
                Assert.AreEqual(fromPixels[i][k], fromPaths[i][k], 1e-5f, $"row {i}: pixels vs paths");
    }

    public sealed class PixelRow
    {
        [VectorType(3 * 16 * 16)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void PretrainOnBytesAndFineTuneOnPaths()
    {
        using var dir = new TempDir();
        var (ml, data, _) = Folder(dir, 8);
        var bytesView = ml.Transforms.LoadRawImageBytes("Bytes", null, "Path").Fit(data).Transform(data);
        var featurizer = ml.Transforms.MaePretrain(new MaePretrainEstimatorOptions
        {
            InputColumnName = "Bytes", Model = TinyRun.Config,
            Training = new MaePretrainOptions { Epochs = 1, BatchSize = 4, WarmupEpochs = 1, Device = MaeDevice.Cpu },
        }).Fit(bytesView);
        Assert.AreEqual(2, featurizer.Pretraining!.StepLosses.Count);

        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(data).Transform(data);
        var classifier = ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
        {
            InputColumnName = "Path", LabelColumnName = "Label", Encoder = featurizer.Encoder,
            Training = new Mae.MLNet.FineTuning.MaeFineTuneOptions { Epochs = 1, BatchSize = 4, WarmupEpochs = 0, Device = MaeDevice.Cpu },
            ValidationData = keyed,
        }).Fit(keyed);
        Assert.AreEqual(1, classifier.FineTuning!.EpochLosses.Count);
        var scores = Features(classifier.Transform(keyed), "Score");
        Assert.AreEqual(8, scores.Length);
        Assert.IsTrue(scores.All(s => s.Length == 2 && Math.Abs(s.Sum() - 1) < 1e-4), "scores are class probabilities");

        // Saving reads pixels through ONNX: a path column is refused with a clear message, not a crash.
        var e = Assert.ThrowsExactly<NotSupportedException>(() => ml.Model.Save(classifier, keyed.Schema, new MemoryStream()));
        StringAssert.Contains(e.Message, "paths");
    }

    [TestMethod]
    public void ABadPathInTheColumnIsNamed()
    {
        using var dir = new TempDir();
        var (ml, _, paths) = Folder(dir, 4);
        var missing = dir.File("missing.jpg");
        var data = ml.Data.LoadFromEnumerable(paths.Append(missing).Select(p => new PathRow { Path = p }));
        var encoder = new MaeEncoder(TinyRun.Config);
        var scored = ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions { InputColumnName = "Path", Device = MaeDevice.Cpu }, encoder).Fit(data).Transform(data);
        var e = Assert.ThrowsExactly<MaeImageFileException>(() => Features(scored));
        Assert.AreEqual(missing, e.FileName);
    }
}
