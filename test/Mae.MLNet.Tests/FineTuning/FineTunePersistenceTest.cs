using Mae.MLNet.Model;
using Mae.MLNet.Tests.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms.Onnx;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.FineTuning;

/// <summary>A fitted pipeline with MaeFineTune saves to one model zip (encoder as ML.NET's OnnxTransformer, head as
/// ML.NET's multiclass model) and loads back with the same Score and PredictedLabel — in this process and in a
/// fresh process that has neither Mae.MLNet nor libtorch.</summary>
[TestClass]
public class FineTunePersistenceTest
{
    static readonly string[] Names = { "top", "middle", "bottom" };

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    public sealed class NamedPrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
        public string PredictedName { get; set; } = "";
    }

    static IDataView Data(MLContext ml, int n, int seed)
    {
        var (images, labels) = TinyFt.Data(n, seed);
        return ml.Data.LoadFromEnumerable(images.Zip(labels, (p, l) => new MaeFineTuneTrainerTest.Row { Pixels = p, Name = Names[l] }));
    }

    static IEnumerable<ITransformer> Flatten(ITransformer t)
        => t is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : new[] { t };

    static List<Prediction> Predict(MLContext ml, ITransformer model, IDataView data)
        => ml.Data.CreateEnumerable<Prediction>(model.Transform(data), reuseRowObject: false).ToList();

    static List<string> PredictedNames(MLContext ml, ITransformer model, IDataView data)
        => ml.Data.CreateEnumerable<NamedPrediction>(model.Transform(data), reuseRowObject: false).Select(p => p.PredictedName).ToList();

    static double AssertSamePredictions(List<Prediction> before, List<Prediction> after)
    {
        Assert.AreEqual(before.Count, after.Count);
        double worst = 0;
        for (int i = 0; i < before.Count; i++)
        {
            Assert.AreEqual(before[i].PredictedLabel, after[i].PredictedLabel, $"row {i}: predicted key");
            for (int k = 0; k < before[i].Score.Length; k++) worst = Math.Max(worst, Math.Abs(before[i].Score[k] - after[i].Score[k]));
        }
        Console.WriteLine($"max |score difference| after reload: {worst:E2}");
        Assert.IsTrue(worst <= 1e-5, $"scores differ by {worst:E2} after reload");
        return worst;
    }

    [TestMethod]
    public void SavedZipLoadsAsMlNetTransformersWithTheSamePredictions()
    {
        var ml = new MLContext(seed: 0);
        var train = Data(ml, 48, seed: 7);
        var options = new MaeFineTuneTrainer.Options
        {
            Encoder = new MaeEncoder(TinyFt.Config), Training = TinyFt.Options(3), InferenceBatchSize = 5,
        };
        var model = ml.Transforms.Conversion.MapValueToKey("Label", "Name")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel"))
            .Fit(train);
        var classifier = Flatten(model).OfType<MaeClassifierTransformer>().Single();
        var test = Data(ml, 21, seed: 5);
        var before = Predict(ml, model, test);
        var namesBefore = PredictedNames(ml, model, test);
        CollectionAssert.IsSubsetOf(namesBefore.Distinct().ToList(), Names);
        var metricsBefore = ml.MulticlassClassification.Evaluate(model.Transform(test));

        string path = Path.Combine(Path.GetTempPath(), $"mae-ft-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(seed: 1);
            var loaded = fresh.Model.Load(path, out _);

            // Only ML.NET's own transformers come back; the head holds exactly the fine-tuned head's weights.
            var parts = Flatten(loaded).ToList();
            Assert.IsFalse(parts.Any(t => t.GetType().Assembly == typeof(MaeClassifierTransformer).Assembly),
                "the loaded chain must not need Mae.MLNet: " + string.Join(", ", parts.Select(t => t.GetType().Name)));
            Assert.AreEqual(1, parts.OfType<OnnxTransformer>().Count());
            var head = parts.OfType<MulticlassPredictionTransformer<MaximumEntropyModelParameters>>().Single().Model;
            VBuffer<float>[] weights = null!;
            head.GetWeights(ref weights, out int classes);
            Assert.AreEqual(3, classes);
            using (no_grad())
            {
                var w = classifier.Model.head.weight!.detach().cpu().data<float>().ToArray();
                var b = classifier.Model.head.bias!.detach().cpu().data<float>().ToArray();
                for (int k = 0; k < classes; k++)
                    CollectionAssert.AreEqual(w.AsSpan(k * TinyFt.Config.EmbedDim, TinyFt.Config.EmbedDim).ToArray(), weights[k].DenseValues().ToArray());
                CollectionAssert.AreEqual(b, head.GetBiases().ToArray());
            }

            var scored = loaded.Transform(test);
            Assert.AreEqual(new KeyDataViewType(typeof(uint), 3), scored.Schema["PredictedLabel"].Type);
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), scored.Schema["Score"].Type);
            VBuffer<ReadOnlyMemory<char>> slots = default;
            scored.Schema["Score"].GetSlotNames(ref slots);
            CollectionAssert.AreEqual(Names, slots.DenseValues().Select(s => s.ToString()).ToArray());
            Assert.IsNull(scored.Schema.GetColumnOrNull("Score__mae_features"), "the temporary feature column is dropped");

            AssertSamePredictions(before, Predict(fresh, loaded, test));
            CollectionAssert.AreEqual(namesBefore, PredictedNames(fresh, loaded, test), "MapKeyToValue gives the same class names");
            var metricsAfter = fresh.MulticlassClassification.Evaluate(scored);
            Assert.AreEqual(metricsBefore.MicroAccuracy, metricsAfter.MicroAccuracy, 0.0);
            Assert.AreEqual(metricsBefore.LogLoss, metricsAfter.LogLoss, 1e-5);

            var engine = fresh.Model.CreatePredictionEngine<MaeFineTuneTrainerTest.Row, NamedPrediction>(loaded);
            var (images, _) = TinyFt.Data(21, seed: 5);
            for (int i = 0; i < 3; i++)
                Assert.AreEqual(namesBefore[i], engine.Predict(new MaeFineTuneTrainerTest.Row { Pixels = images[i] }).PredictedName);
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void FreshProcessWithoutLibTorchScoresTheFineTunedZip()
    {
        var ml = new MLContext(seed: 0);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(Data(ml, 48, seed: 7));
        var train = keyed.Transform(Data(ml, 48, seed: 7));
        var classifier = ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
        {
            Encoder = new MaeEncoder(TinyFt.Config), Training = TinyFt.Options(2), InferenceBatchSize = 5, GlobalPool = false,
        }).Fit(train);
        var test = keyed.Transform(Data(ml, 13, seed: 5));
        var before = ml.Data.CreateEnumerable<Prediction>(classifier.Transform(test), reuseRowObject: false).ToList();
        string zip = Path.Combine(Path.GetTempPath(), $"mae-ft-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(classifier, train.Schema, zip);
            var (images, _) = TinyFt.Data(13, seed: 5);
            var result = ScoreHost.Score(zip, images, "Score");
            Assert.IsFalse(result.LibTorchLoaded, "the deployed classifier must score without libtorch");
            CollectionAssert.AreEqual(new[] { "OnnxTransformer", "MulticlassPredictionTransformer`1", "ColumnSelectingTransformer" }, result.Transformers);
            AssertSamePredictions(before, result.Rows.Select(r => new Prediction { Score = r.Vector, PredictedLabel = r.PredictedLabel }).ToList());
        }
        finally { File.Delete(zip); }
    }

    public sealed class ImageRow
    {
        [ImageType(16, 16)] public MLImage? Image { get; set; }
        public uint Label { get; set; }
    }

    [TestMethod]
    public void ImageColumnClassifierRoundTripsThroughExtractPixels()
    {
        // Three classes by colour cast on 3-channel MLImages.
        static List<ImageRow> Rows(int n, int seed)
        {
            var rng = new Random(seed);
            return Enumerable.Range(0, n).Select(i =>
            {
                int label = i % 3;
                var bgra = new byte[16 * 16 * 4];
                for (int p = 0; p < 16 * 16; p++)
                {
                    for (int c = 0; c < 3; c++) // BGRA byte c is channel 2 − c of RGB
                        bgra[4 * p + c] = (byte)(rng.Next(150) + (2 - c == label ? 100 : 0));
                    bgra[4 * p + 3] = 255;
                }
                return new ImageRow { Image = MLImage.CreateFromPixels(16, 16, MLPixelFormat.Bgra32, bgra), Label = (uint)label };
            }).ToList();
        }
        var ml = new MLContext(seed: 0);
        var config = TinyFt.Config with { InChannels = 3 };
        var training = TinyFt.Options(2);
        training.Augmentation = new MaeAugmentationOptions { OutputSize = 16, Channels = 3, ScaleMin = 0.8 };
        var train = ml.Data.LoadFromEnumerable(Rows(30, 1));
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MaeFineTune(new MaeFineTuneTrainer.Options
            {
                InputColumnName = "Image", Encoder = new MaeEncoder(config), Training = training, InferenceBatchSize = 4,
            }))
            .Fit(train);
        var test = ml.Data.LoadFromEnumerable(Rows(9, 2));
        var before = ml.Data.CreateEnumerable<Prediction>(model.Transform(test), reuseRowObject: false).ToList();

        var stream = new MemoryStream();
        ml.Model.Save(model, train.Schema, stream);
        stream.Position = 0;
        var fresh = new MLContext(seed: 1);
        var loaded = fresh.Model.Load(stream, out _);
        var types = Flatten(loaded).Select(t => t.GetType().Name).ToList();
        CollectionAssert.IsSubsetOf(new[] { "ImagePixelExtractingTransformer", "OnnxTransformer", "MulticlassPredictionTransformer`1" }, types);
        var after = fresh.Data.CreateEnumerable<Prediction>(loaded.Transform(test), reuseRowObject: false).ToList();
        AssertSamePredictions(before, after);
        Assert.IsNull(loaded.Transform(test).Schema.GetColumnOrNull("Image__mae_pixels"), "the temporary pixel column is dropped");
    }
}
