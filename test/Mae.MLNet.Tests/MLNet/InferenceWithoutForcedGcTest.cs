using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>
/// Issue 14, item 6: inference no longer enters a GC-free region per batch or per PredictionEngine row (each entry
/// forced a full gen-2 collection), and it stays exact while other threads collect and finalize libtorch Scalars
/// all the time — the hazard the GC-free region guarded against, now handled by holding every Scalar the forward
/// pass passes to native code (ScalarMath). And BatchSize is bounded with a clear error.
/// </summary>
[TestClass]
public class InferenceWithoutForcedGcTest
{
    static readonly MaeConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 4,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };
    const int Length = 3 * 16 * 16;

    static float[] Pixels(int rows, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows * Length).Select(_ => (float)rng.NextDouble()).ToArray();
    }

    [TestMethod]
    public void FeaturizingBatchesForcesNoGen2Collections()
    {
        TorchRuntime.Seed(1);
        using var encoder = new MaeEncoder(Config);
        var runner = new EncoderRunner(encoder, MaePooling.Mean, 1, MaeDevice.Cpu, PixelNormalization.Default(3));
        var pixels = Pixels(4, 1);
        var outputs = new float[4 * runner.OutputLength];
        runner.Run(pixels, 4, outputs);
        int before = GC.CollectionCount(2);
        const int batches = 300;
        for (int i = 0; i < batches; i++) runner.Run(pixels, 4, outputs);
        int collections = GC.CollectionCount(2) - before;
        Console.WriteLine($"{batches} batches: {collections} gen-2 collections");
        Assert.IsLessThan(10, collections, $"{collections} gen-2 collections in {batches} batches (one per batch when a GC-free region was entered per batch)");
    }

    public sealed class Row { [VectorType(Length)] public float[] Pixels { get; set; } = new float[Length]; }
    public sealed class Out { public float[] Features { get; set; } = Array.Empty<float>(); }

    [TestMethod]
    public void PredictionEngineRowsForceNoGen2Collections()
    {
        TorchRuntime.Seed(2);
        var ml = new MLContext(0);
        using var encoder = new MaeEncoder(Config);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Pixels = Pixels(1, 2) } });
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, MaePooling.Cls, batchSize: 8, device: MaeDevice.Cpu).Fit(data);
        var engine = ml.Model.CreatePredictionEngine<Row, Out>(model);
        var row = new Row { Pixels = Pixels(1, 3) };
        var first = engine.Predict(row).Features;
        int before = GC.CollectionCount(2);
        const int rows = 200;
        for (int i = 0; i < rows; i++) CollectionAssert.AreEqual(first, engine.Predict(row).Features);
        int collections = GC.CollectionCount(2) - before;
        Console.WriteLine($"{rows} Predict calls: {collections} gen-2 collections");
        Assert.IsLessThan(10, collections, $"{collections} gen-2 collections in {rows} Predict calls");
    }

    /// <summary>A second thread collects, finalizes and churns native Scalars and small tensors without pause while the
    /// runner featurizes: a Scalar freed during a native call would surface as a libtorch error or a wrong value.</summary>
    [TestMethod]
    public void FeaturesStayExactUnderConstantCollection()
    {
        TorchRuntime.Seed(3);
        using var encoder = new MaeEncoder(Config);
        var runner = new EncoderRunner(encoder, MaePooling.Cls, 1, MaeDevice.Cpu, PixelNormalization.Default(3));
        var pixels = Pixels(8, 4);
        var reference = new float[8 * runner.OutputLength];
        runner.Run(pixels, 8, reference);

        using var stop = new CancellationTokenSource();
        long churned = 0;
        var hammer = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                for (int i = 0; i < 64; i++)
                {
                    _ = (i + 0.5).ToScalar();                 // left to the finalizer on purpose
                    using var t = ones(4).add(ones(4), (i + 1.0).ToScalar());
                }
                GC.Collect();
                GC.WaitForPendingFinalizers();
                churned++;
            }
        }) { IsBackground = true };
        hammer.Start();
        try
        {
            var outputs = new float[reference.Length];
            for (int k = 0; k < 400; k++)
            {
                runner.Run(pixels, 8, outputs);
                CollectionAssert.AreEqual(reference, outputs, $"run {k} differs from the reference");
            }
        }
        finally
        {
            stop.Cancel();
            hammer.Join();
        }
        Console.WriteLine($"400 batches exact while the other thread ran {churned} collect/finalize rounds");
        Assert.IsGreaterThan(10L, churned, "the collecting thread must actually have run alongside");
    }

    /// <summary>The deterministic check: featurizing and classifying create no libtorch Scalar that nothing holds (none
    /// reaches a finalizer), while a deliberately unheld one is seen — so the check can fail.</summary>
    [TestMethod]
    public void InferenceLeavesNoScalarToTheFinalizer()
    {
        TorchRuntime.Seed(5);
        using var encoder = new MaeEncoder(Config);
        using var classifier = new VitClassifier(Config, 3, globalPool: true);
        var features = new EncoderRunner(encoder, MaePooling.Mean, 1, MaeDevice.Cpu, PixelNormalization.Default(3));
        var classes = new ClassifierRunner(classifier, Config, 3, MaeDevice.Cpu, PixelNormalization.Default(3));
        var pixels = Pixels(4, 5);
        features.Run(pixels, 4, new float[4 * features.OutputLength]);     // warm up, statics created
        classes.Run(pixels, 4, new float[4 * classes.OutputLength]);
        using var watch = new FinalizedScalars();
        long fromInference = watch.FinalizedDuring(() =>
        {
            for (int i = 0; i < 20; i++)
            {
                features.Run(pixels, 4, new float[4 * features.OutputLength]);
                classes.Run(pixels, 4, new float[4 * classes.OutputLength]);
            }
        });
        long fromControl = watch.FinalizedByControl();
        Console.WriteLine($"Scalars finalized: {fromInference} from 40 inference batches, {fromControl} from 20 tensor + tensor (objects finalized in all: {watch.Any})");
        Assert.IsTrue(watch.Enabled, "the runtime's GC events must reach the listener");
        Assert.IsGreaterThanOrEqualTo(20L, fromControl, "the listener must see unheld temporaries finalized");
        Assert.AreEqual(0L, fromInference, "inference created libtorch Scalars that nothing held");
    }

    [TestMethod]
    [DataRow(0)]
    [DataRow(4097)]
    [DataRow(1_000_000)]
    [DataRow(int.MaxValue)]
    public void BatchSizeIsBounded(int batchSize)
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new MaeFeaturizerOptions { BatchSize = batchSize }.Validate());
        StringAssert.Contains(e.Message, "BatchSize must be between 1 and 4096");
        StringAssert.Contains(e.Message, batchSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
