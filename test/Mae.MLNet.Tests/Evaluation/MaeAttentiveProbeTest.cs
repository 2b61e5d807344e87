using Mae.MLNet.Evaluation;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.FineTuning;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using Microsoft.ML.Transforms.Onnx;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Evaluation;

/// <summary>The attentive probe: learns a separable toy problem on a frozen encoder without changing it, and as an
/// ML.NET trainer saves to a model zip (ONNX graph + ML.NET's multiclass head) that scores as the in-memory model.</summary>
[TestClass]
public class MaeAttentiveProbeTest
{
    static readonly string[] Names = { "top", "middle", "bottom" };

    public sealed class Prediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public uint PredictedLabel { get; set; }
    }

    static MaeAttentiveProbeOptions Recipe(int epochs) => new()
    {
        Epochs = epochs, BatchSize = 8, LearningRate = 3e-3, WarmupEpochs = 1, Seed = 4, Device = MaeDevice.Cpu, LogEvery = 1,
        EvaluationBatchSize = 16,
    };

    static IDataView Data(MLContext ml, int n, int seed)
    {
        var (images, labels) = TinyFt.Data(n, seed);
        return ml.Data.LoadFromEnumerable(images.Zip(labels, (p, l) => new MaeFineTuneTrainerTest.Row { Pixels = p, Name = Names[l] }));
    }

    static Dictionary<string, float[]> Weights(nn.Module m)
        => m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().contiguous().data<float>().ToArray());

    /// <summary>Three classes (a bright band at the top, middle or bottom) on a frozen, randomly initialised encoder:
    /// the patch tokens carry position and brightness, and the probe must learn which patches to attend to. Chance is
    /// 33 %; the held-out accuracy must reach 90 %, the loss fall, and the encoder stay bit for bit the same.</summary>
    [TestMethod]
    public void LearnsASeparableToyProblemWithoutChangingTheEncoder()
    {
        TorchRuntime.Seed(11);
        var encoder = new MaeEncoder(TinyFt.Config);
        var before = Weights(encoder);
        using var train = TinyFt.Source(48, seed: 7);
        using var validation = TinyFt.Source(30, seed: 99);
        var reports = new List<MaeFineTuneProgress>();
        var result = new MaeAttentiveProber(Recipe(15)).Train(encoder, train, validation, progress: new SyncFtProgress(reports.Add));

        var epochLosses = result.Training.EpochLosses;
        Console.WriteLine($"epoch losses {string.Join(", ", epochLosses.Select(l => l.ToString("F3")))}; validation {string.Join(", ", result.Training.ValidationAccuracies.Select(a => a.ToString("P0")))}");
        Assert.AreEqual(15, epochLosses.Count);
        Assert.AreEqual(15, result.Training.ValidationAccuracies.Count);
        Assert.AreEqual(15, reports.Count(r => r.EndOfEpoch));
        Assert.IsTrue(epochLosses[^1] < 0.5 * epochLosses[0], $"loss {epochLosses[0]:F3} → {epochLosses[^1]:F3}");
        Assert.IsTrue(result.Training.ValidationAccuracies[^1] >= 0.9, $"held-out accuracy {result.Training.ValidationAccuracies[^1]:P1}");
        // The static evaluation (images → tokens → probe) agrees with the cached-token evaluation of the last epoch.
        var (accuracy, _) = MaeAttentiveProber.Evaluate(encoder, result.Model, validation);
        Assert.AreEqual(result.Training.ValidationAccuracies[^1], accuracy, 1e-12);

        var after = Weights(encoder);
        foreach (var (name, w) in before) CollectionAssert.AreEqual(w, after[name], $"encoder parameter {name} changed");
        Assert.IsTrue(encoder.training, "the encoder's mode (a new module trains) is restored");
    }

    /// <summary>HorizontalFlip: the cache's second half must hold the tokens of the mirrored images — checked against a
    /// plain cache of images mirrored here pixel by pixel —, the draws must pick each view about half the time and
    /// repeat for a seed. Trained on a left/right problem (a vertical band at the left or the right edge), the probe
    /// must learn it without the flip and must not with it: a mirrored left band is a right band with the left label,
    /// so its loss must stay at chance's.</summary>
    [TestMethod]
    public void HorizontalFlipCachesTheMirroredImagesAndTrainsOnBothViews()
    {
        TorchRuntime.Seed(13);
        using var encoder = new MaeEncoder(TinyFt.Config);
        var (images, labels) = TinyFt.Data(20, seed: 3);
        var mirrored = images.Select(img => Enumerable.Range(0, 256).Select(j => img[j / 16 * 16 + 15 - j % 16]).ToArray()).ToList();
        using var source = MaeLabeledImageSource.FromArrays(images, labels, TinyFt.Shape);
        using var mirrorSource = MaeLabeledImageSource.FromArrays(mirrored, labels, TinyFt.Shape);
        var transform = MaeAttentiveProber.TokenTransform(TinyFt.Config, null);
        using var both = MaeAttentiveProber.TokenCache.Compute(encoder, 2, source, transform, 8, CPU, mirrored: true);
        using var plain = MaeAttentiveProber.TokenCache.Compute(encoder, 2, source, transform, 8, CPU, mirrored: false);
        using var flipped = MaeAttentiveProber.TokenCache.Compute(encoder, 2, mirrorSource, transform, 8, CPU, mirrored: false);
        Assert.IsTrue(both.Mirrored);
        Assert.IsFalse(plain.Mirrored);
        CollectionAssert.AreEqual(new long[] { 40, TinyFt.Config.NumPatches, 64 }, both.Tokens.shape);
        Assert.IsTrue(both.Tokens[TensorIndex.Slice(0, 20)].allclose(plain.Tokens, rtol: 0, atol: 1e-6), "first half: the images as they are");
        Assert.IsTrue(both.Tokens[TensorIndex.Slice(20, 40)].allclose(flipped.Tokens, rtol: 0, atol: 1e-5), "second half: the mirrored images");
        Assert.IsFalse(plain.Tokens.allclose(flipped.Tokens, rtol: 0, atol: 1e-3), "the toy images are not symmetric");

        var rows = Enumerable.Range(0, 10_000).Select(i => (long)i).ToArray();
        var views = MaeAttentiveProber.Views(rows, 10_000, seed: 5, epoch: 2);
        int mirroredDraws = views.Count(v => v >= 10_000);
        Assert.IsTrue(Math.Abs(mirroredDraws - 5_000) < 250, $"{mirroredDraws} of 10 000 draws mirrored");
        for (int i = 0; i < rows.Length; i++) Assert.IsTrue(views[i] == rows[i] || views[i] == rows[i] + 10_000);
        CollectionAssert.AreEqual(views, MaeAttentiveProber.Views(rows, 10_000, seed: 5, epoch: 2));
        CollectionAssert.AreNotEqual(views, MaeAttentiveProber.Views(rows, 10_000, seed: 5, epoch: 3));

        (double TrainingLoss, double HeldOutLoss, double Accuracy) Trained(bool flip)
        {
            TorchRuntime.Seed(11);
            using var frozen = new MaeEncoder(TinyFt.Config);
            using var train = LeftRight(48, seed: 7);
            using var validation = LeftRight(30, seed: 99);
            var recipe = Recipe(15);
            recipe.HorizontalFlip = flip;
            var t = new MaeAttentiveProber(recipe).Train(frozen, train, validation).Training;
            Console.WriteLine($"flip {flip}: training loss {t.EpochLosses[0]:F3} → {t.EpochLosses[^1]:F3}, held-out loss {t.ValidationLosses[^1]:F3}, accuracy {t.ValidationAccuracies[^1]:P0}");
            return (t.EpochLosses[^1], t.ValidationLosses[^1], t.ValidationAccuracies[^1]);
        }
        var without = Trained(false);
        Assert.IsTrue(without.Accuracy >= 0.9 && without.HeldOutLoss < 0.1, $"without the flip: {without}");
        // With it, both labels come with both looks: the best a probe can do is ½ / ½, cross entropy ln 2 ≈ 0.693 (its
        // accuracy means nothing then: argmax of near-equal scores).
        var with = Trained(true);
        Assert.IsTrue(with.TrainingLoss > 0.65 && with.HeldOutLoss > 0.65, $"with the flip: {with}; left and right must look alike");
    }

    /// <summary>Two classes: a bright vertical band at the left (0) or the right (1) edge of a 16-px noisy image.</summary>
    static MaeLabeledImageSource LeftRight(int n, int seed)
    {
        var rng = new Random(seed);
        var images = new List<float[]>();
        var labels = new List<long>();
        for (int i = 0; i < n; i++)
        {
            var img = new float[256];
            for (int j = 0; j < img.Length; j++) img[j] = (float)(rng.NextDouble() * 0.3);
            int x0 = i % 2 == 0 ? 0 : 11;
            for (int y = 0; y < 16; y++)
                for (int x = x0; x < x0 + 5; x++) img[y * 16 + x] = 0.9f;
            images.Add(img);
            labels.Add(i % 2);
        }
        return MaeLabeledImageSource.FromArrays(images, labels, TinyFt.Shape);
    }

    /// <summary>Layers = 2: the probe reads the last two blocks' tokens concatenated per patch, and the zip's ONNX graph
    /// must build the same concatenation; MlpRatio = 4: the pooler's MLP must be in the graph too.</summary>
    [TestMethod]
    [DataRow(1, 0.0)]
    [DataRow(2, 0.0)]
    [DataRow(1, 4.0)]
    public void SavedZipScoresAsTheInMemoryProbe(int layers, double mlpRatio)
    {
        var ml = new MLContext(seed: 0);
        var train = Data(ml, 48, seed: 7);
        TorchRuntime.Seed(12);
        var recipe = Recipe(3);
        recipe.Layers = layers;
        recipe.MlpRatio = mlpRatio;
        var options = new MaeAttentiveProbeTrainer.Options { Encoder = new MaeEncoder(TinyFt.Config), Training = recipe, InferenceBatchSize = 5 };
        var model = ml.Transforms.Conversion.MapValueToKey("Label", "Name")
            .Append(ml.MulticlassClassification.Trainers.MaeAttentiveProbe(options))
            .Fit(train);
        var probe = ((IEnumerable<ITransformer>)model).OfType<MaeAttentiveProbeTransformer>().Single();
        Assert.AreEqual(3, probe.NumClasses);
        Assert.AreEqual(layers * TinyFt.Config.EmbedDim, probe.Probe.EmbedDim);
        Assert.AreEqual(layers, MaeAttentiveProber.LayersOf(probe.Encoder, probe.Probe));
        Assert.AreEqual(mlpRatio > 0, probe.Probe.pooler.mlp is not null);
        CollectionAssert.AreEqual(Names, probe.ClassNames());
        var test = Data(ml, 21, seed: 5);
        var scored = model.Transform(test);
        Assert.AreEqual(new KeyDataViewType(typeof(uint), 3), scored.Schema["PredictedLabel"].Type);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), scored.Schema["Score"].Type);
        var before = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToList();
        foreach (var p in before) Assert.AreEqual(1.0, p.Score.Sum(), 1e-5);

        string path = Path.Combine(Path.GetTempPath(), $"mae-attentive-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(seed: 1);
            var loaded = fresh.Model.Load(path, out _);
            static IEnumerable<ITransformer> Flatten(ITransformer t) => t is IEnumerable<ITransformer> c ? c.SelectMany(Flatten) : new[] { t };
            var parts = Flatten(loaded).ToList();
            Assert.IsFalse(parts.Any(t => t.GetType().Assembly == typeof(MaeAttentiveProbeTransformer).Assembly),
                "the loaded chain must not need Mae.MLNet: " + string.Join(", ", parts.Select(t => t.GetType().Name)));
            Assert.AreEqual(1, parts.OfType<OnnxTransformer>().Count());
            Assert.AreEqual(1, parts.OfType<MulticlassPredictionTransformer<MaximumEntropyModelParameters>>().Count());

            var after = fresh.Data.CreateEnumerable<Prediction>(loaded.Transform(test), reuseRowObject: false).ToList();
            Assert.AreEqual(before.Count, after.Count);
            double worst = 0;
            for (int i = 0; i < before.Count; i++)
            {
                Assert.AreEqual(before[i].PredictedLabel, after[i].PredictedLabel, $"row {i}: predicted key");
                for (int k = 0; k < 3; k++) worst = Math.Max(worst, Math.Abs(before[i].Score[k] - after[i].Score[k]));
            }
            Console.WriteLine($"max |score difference| after reload: {worst:E2}");
            Assert.IsTrue(worst <= 1e-4, $"scores differ by {worst:E2} after reload");
        }
        finally { File.Delete(path); }
    }

    /// <summary>A probe's token width must be k × the encoder's width for 1 ≤ k ≤ depth; otherwise using it with that
    /// encoder, in evaluation or in the ONNX export, is refused naming both widths.</summary>
    [TestMethod]
    public void AProbeThatDoesNotFitTheEncoderIsRefused()
    {
        using var encoder = new MaeEncoder(TinyFt.Config);   // width 32, depth 2
        Assert.AreEqual(2, MaeAttentiveProber.LayersOf(encoder, new AttentiveClassifier(64, 2, 3)));
        foreach (int width in new[] { 48, 96 })   // not a multiple; more blocks than the encoder has
        {
            using var probe = new AttentiveClassifier(width, 2, 3);
            var e = Assert.ThrowsExactly<ArgumentException>(() => MaeAttentiveProber.LayersOf(encoder, probe));
            StringAssert.Contains(e.Message, $"width {width}");
            StringAssert.Contains(e.Message, "1 … 2 × 32");
            e = Assert.ThrowsExactly<ArgumentException>(() => Mae.MLNet.Interop.Onnx.MaeOnnxExport.BuildModel(encoder, probe.pooler));
            StringAssert.Contains(e.Message, $"width {width}");
        }
    }

    [TestMethod]
    public void BadInputIsRejectedBeforeTraining()
    {
        var ml = new MLContext(seed: 0);
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Fit(Data(ml, 12, seed: 7));
        var data = toKey.Transform(Data(ml, 12, seed: 7));
        MaeAttentiveProbeTrainer.Options Tiny() => new() { Encoder = new MaeEncoder(TinyFt.Config), Training = Recipe(1) };
        MaeAttentiveProbeTrainer Trainer(MaeAttentiveProbeTrainer.Options o) => ml.MulticlassClassification.Trainers.MaeAttentiveProbe(o);

        // Label not a key type: named, with the trainer's name.
        var text = Tiny(); text.LabelColumnName = "Name";
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(text).Fit(data));
        StringAssert.Contains(e.Message, "key type");
        StringAssert.Contains(e.Message, "MaeAttentiveProbe");
        // A missing label column.
        var missing = Tiny(); missing.LabelColumnName = "Nope";
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(missing).Fit(data)).Message, "'Nope' was not found");
        // Images that do not fit the encoder.
        var big = Tiny(); big.Encoder = new MaeEncoder(TinyFt.Config with { ImageSize = 32 });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(big).Fit(data)).Message, "1024");
        // Empty data.
        var empty = toKey.Transform(ml.Data.LoadFromEnumerable(new List<MaeFineTuneTrainerTest.Row>()));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => Trainer(Tiny()).Fit(empty)).Message, "no rows");
        // No encoder; heads that do not divide the width; a token cache over its bound; fewer images than a batch.
        var none = Tiny(); none.Encoder = null;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => Trainer(none)).Message, "Encoder");
        var heads = Tiny(); heads.Training.NumHeads = 3;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(heads).Fit(data)).Message, "divide");
        var bound = Tiny(); bound.Training.MaxTokenCacheBytes = 1000;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => Trainer(bound).Fit(data)).Message, "MaxTokenCacheBytes");
        // The bound counts the mirrored views: 12 images' tokens (24 KiB) fit in 30 000 bytes, twice that does not.
        var fits = Tiny(); fits.Training.MaxTokenCacheBytes = 30_000;
        Trainer(fits).Fit(data);
        var mirroredBound = Tiny(); mirroredBound.Training.MaxTokenCacheBytes = 30_000; mirroredBound.Training.HorizontalFlip = true;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => Trainer(mirroredBound).Fit(data)).Message, "mirrored");
        var batch = Tiny(); batch.Training.BatchSize = 64;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => Trainer(batch).Fit(data)).Message, "fewer than BatchSize");
        var deep = Tiny(); deep.Training.Layers = TinyFt.Config.Depth + 1;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(deep).Fit(data)).Message, $"expected 1 … {TinyFt.Config.Depth}");
        var epochs = Tiny(); epochs.Training.Epochs = 0;
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(epochs));
        // A pooler MLP ratio out of range (the options), or one that gives no hidden unit at this token width (32).
        var negative = Tiny(); negative.Training.MlpRatio = -1;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(negative)).Message, "MlpRatio");
        var tiny = Tiny(); tiny.Training.MlpRatio = 0.01;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Trainer(tiny).Fit(data)).Message, "no hidden unit");
    }
}
