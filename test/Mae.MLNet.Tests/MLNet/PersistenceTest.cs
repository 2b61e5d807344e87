using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>A fitted pipeline with MaeFeaturize saves to one model zip (the featurizer as ML.NET's OnnxTransformer) and
/// loads back — in this process and in a fresh process that has neither Mae.MLNet nor libtorch.</summary>
[TestClass]
public class PersistenceTest
{
    const int Size = 16, Length = 3 * Size * Size;

    static readonly MaeConfig Config = new()
    {
        ImageSize = Size, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 4,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    public sealed class Item
    {
        [VectorType(Length)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    public sealed class Scored
    {
        public float[] Features { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    /// <summary>Three classes with different colour casts, so the probe has something to learn.</summary>
    static List<Item> MakeItems(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(i =>
        {
            uint label = (uint)(i % 3);
            var pixels = new float[Length];
            for (int k = 0; k < Length; k++)
                pixels[k] = Math.Clamp((float)rng.NextDouble() * 0.6f + (k / (Size * Size) == label ? 0.4f : 0f), 0f, 1f);
            return new Item { Pixels = pixels, Label = label };
        }).ToList();
    }

    static (ITransformer model, List<Item> test, List<Scored> before, DataViewSchema schema) FitPipeline(MLContext ml, MaePooling pooling)
    {
        TorchRuntime.Seed(5);
        var encoder = new MaeEncoder(Config);
        var train = ml.Data.LoadFromEnumerable(MakeItems(60, 1));
        var pipeline = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, pooling, batchSize: 8, device: MaeDevice.Cpu)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Features", maximumNumberOfIterations: 20));
        var model = pipeline.Fit(train);
        var test = MakeItems(13, 2);
        var before = ml.Data.CreateEnumerable<Scored>(model.Transform(ml.Data.LoadFromEnumerable(test)), false).ToList();
        return (model, test, before, train.Schema);
    }

    static void AssertSame(List<Scored> before, List<Scored> after)
    {
        Assert.AreEqual(before.Count, after.Count);
        double worst = 0;
        for (int i = 0; i < before.Count; i++)
        {
            Assert.AreEqual(before[i].PredictedLabel, after[i].PredictedLabel, $"row {i} prediction");
            for (int k = 0; k < before[i].Features.Length; k++)
                worst = Math.Max(worst, Math.Abs(before[i].Features[k] - after[i].Features[k]));
        }
        Console.WriteLine($"max |feature difference| after reload: {worst:E2}");
        Assert.IsTrue(worst <= 1e-4, $"features differ by {worst:E2} after reload");
    }

    [TestMethod]
    [DataRow(MaePooling.Cls)]
    [DataRow(MaePooling.Mean)]
    public void SavedZipLoadsAsOnnxTransformerWithTheSameOutputs(MaePooling pooling)
    {
        var ml = new MLContext(seed: 0);
        var (model, test, before, schema) = FitPipeline(ml, pooling);
        string path = Path.Combine(Path.GetTempPath(), $"mae-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, schema, path);
            var fresh = new MLContext(seed: 1);
            var loaded = fresh.Model.Load(path, out var loadedSchema);
            Assert.IsInstanceOfType<OnnxTransformer>(((TransformerChain<ITransformer>)loaded).First());
            var after = fresh.Data.CreateEnumerable<Scored>(loaded.Transform(fresh.Data.LoadFromEnumerable(test)), false).ToList();
            AssertSame(before, after);
            var engine = fresh.Model.CreatePredictionEngine<Item, Scored>(loaded);
            Assert.AreEqual(before[4].PredictedLabel, engine.Predict(test[4]).PredictedLabel);
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void FreshProcessWithoutLibTorchScoresTheZip()
    {
        var ml = new MLContext(seed: 0);
        var (model, test, before, schema) = FitPipeline(ml, MaePooling.Cls);
        string zip = Path.Combine(Path.GetTempPath(), $"mae-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, schema, zip);
            var result = ScoreHost.Score(zip, test.Select(t => t.Pixels).ToList(), "Features");
            Assert.IsFalse(result.LibTorchLoaded, "the deployed model must score without libtorch");
            Assert.AreEqual("OnnxTransformer", result.Transformers[0]);
            AssertSame(before, result.Rows.Select(r => new Scored { PredictedLabel = r.PredictedLabel, Features = r.Vector }).ToList());
        }
        finally { File.Delete(zip); }
    }
}
