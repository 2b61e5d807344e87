using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>A timm ConvNeXt V2 weight file featurizes in an ML.NET pipeline: the rows' features equal timm's pooled
/// features (<c>forward_head(pre_logits=True)</c>, from the fixture), batched or row by row.</summary>
[TestClass]
public class ConvNextFeaturizeTest
{
    const int Length = 3 * 64 * 64;

    public sealed class Row
    {
        public int Index { get; set; }
        [VectorType(Length)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    public sealed class Output
    {
        public int Index { get; set; }
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void TimmWeightsFeaturizeInAPipelineAsTimmPools()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        string dir = Path.Combine(Path.GetTempPath(), $"mae-convnext-ml-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        try
        {
            string weights = Path.Combine(dir, "convnextv2_tiny_test.safetensors");
            Safetensors.SaveStateDict(weights, fx.Tensors.Where(kv => kv.Key.StartsWith("param.")).ToDictionary(kv => kv.Key["param.".Length..], kv => kv.Value));
            using var model = MaeWeightFile.LoadConvNextV2(weights, fx.Config);   // 64 px, as the fixture's images
            var images = fx["input.images"];
            var rows = Enumerable.Range(0, 2).Select(i => new Row { Index = i, Pixels = images[i].flatten().data<float>().ToArray() }).ToList();
            var ml = new MLContext(seed: 1);
            var data = ml.Data.LoadFromEnumerable(rows);
            // The fixture's images are already the network's input: no pixel normalisation here.
            var options = new MaeFeaturizerOptions { InputColumnName = "Pixels", OutputColumnName = "Features", BatchSize = 2, Device = MaeDevice.Cpu, Normalization = PixelNormalization.Identity(3) };
            var transformer = ml.Transforms.MaeFeaturize(options, model).Fit(data);
            Assert.AreEqual(24, transformer.FeatureDim);
            Assert.AreSame(model, transformer.ConvNext);
            var outputs = ml.Data.CreateEnumerable<Output>(transformer.Transform(data), reuseRowObject: false).ToList();
            var expected = fx["out.features"];
            for (int i = 0; i < 2; i++)
                TensorAssert.Close(tensor(outputs[i].Features), expected[i], 1e-4, $"row {i}");
            using var engine = ml.Model.CreatePredictionEngine<Row, Output>(transformer);
            TensorAssert.Close(tensor(engine.Predict(rows[1]).Features), expected[1], 1e-4, "prediction engine");
            Assert.ThrowsExactly<InvalidOperationException>(() => transformer.Encoder);
            Assert.ThrowsExactly<NotSupportedException>(() => transformer.ExportOnnx(Path.Combine(dir, "x.onnx")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary><c>MaePretrain</c> with <see cref="MaePretrainEstimatorOptions.ConvNextModel"/>: FCMAE on the column, and
    /// the featurizer gives the trained encoder's pooled features (as the model itself computes them).</summary>
    [TestMethod]
    public void MaePretrainWithAConvNextConfigTrainsFcmaeAndFeaturizes()
    {
        var rng = new Random(3);
        var rows = Enumerable.Range(0, 8).Select(i => new Row { Index = i, Pixels = Enumerable.Range(0, Length).Select(_ => (float)rng.NextDouble()).ToArray() }).ToList();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);
        var config = ConvNextV2Config.Atto with { ImageSize = 64, Dims = new[] { 8, 8, 8, 16 }, Depths = new[] { 1, 1, 1, 1 }, DecoderEmbedDim = 8 };
        var featurizer = ml.Transforms.MaePretrain(new MaePretrainEstimatorOptions
        {
            InputColumnName = "Pixels", OutputColumnName = "Features", ConvNextModel = config,
            Training = new Mae.MLNet.Pretraining.MaePretrainOptions { Epochs = 2, WarmupEpochs = 0, BatchSize = 4, MaskRatio = 0.5, Seed = 1, Device = MaeDevice.Cpu },
        }).Fit(data);
        Assert.IsNotNull(featurizer.ConvNext);
        Assert.AreEqual(4, featurizer.Pretraining!.StepLosses.Count);
        var outputs = ml.Data.CreateEnumerable<Output>(featurizer.Transform(data), reuseRowObject: false).ToList();
        Assert.AreEqual(16, outputs[0].Features.Length);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var norm = featurizer.Normalization;
        var x = tensor(rows[5].Pixels).reshape(1, 3, 64, 64);
        var expected = featurizer.ConvNext!.ForwardFeatures(norm.Apply(x))[0];
        TensorAssert.Close(tensor(outputs[5].Features), expected, 1e-5, "row 5");
    }
}
