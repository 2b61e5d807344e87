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
            // The model zip (ML.NET's OnnxTransformer over the exported graph) gives timm's features too, without libtorch.
            string zip = Path.Combine(dir, "featurizer.zip");
            ml.Model.Save(transformer, data.Schema, zip);
            var loaded = new MLContext(seed: 2).Model.Load(zip, out _);
            Assert.IsInstanceOfType<Microsoft.ML.Transforms.Onnx.OnnxTransformer>(loaded);
            var reloaded = ml.Data.CreateEnumerable<Output>(loaded.Transform(data), reuseRowObject: false).ToList();
            for (int i = 0; i < 2; i++)
                TensorAssert.Close(tensor(reloaded[i].Features), expected[i], 1e-4, $"zip row {i}");
            transformer.ExportOnnx(Path.Combine(dir, "x.onnx"));
            Assert.IsTrue(new FileInfo(Path.Combine(dir, "x.onnx")).Length > 10_000);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary><see cref="MaeFeaturizerOptions.Layers"/> = 4 on a ConvNeXt: every stage's pooled features concatenated
    /// (earlier stages averaged and normalised without affine, the last through head.norm), built here from timm's stage
    /// maps and pooled features (the fixture's feature map is stage 4's).</summary>
    [TestMethod]
    public void SeveralStagesConcatenateEachStagesPooledFeatures()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        using var model = new ConvNextV2(fx.Config);
        fx.LoadInto(model, "param.", skip: "head.fc.");
        var images = fx["input.images"];
        var rows = Enumerable.Range(0, 2).Select(i => new Row { Index = i, Pixels = images[i].flatten().data<float>().ToArray() }).ToList();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = new MaeFeaturizerOptions { Layers = 4, Device = MaeDevice.Cpu, Normalization = PixelNormalization.Identity(3) };
        var transformer = ml.Transforms.MaeFeaturize(options, model).Fit(data);
        Assert.AreEqual(8 + 12 + 16 + 24, transformer.FeatureDim);
        var outputs = ml.Data.CreateEnumerable<Output>(transformer.Transform(data), reuseRowObject: false).ToList();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var maps = model.ForwardStages(images);
        TensorAssert.Close(maps[3], fx["out.feature_map"], 1e-4, "stage 4 is timm's feature map");
        static Tensor Norm(Tensor v) => (v - v.mean(new long[] { 1 }, keepdim: true)) / (v.var(1, unbiased: false, keepdim: true) + 1e-6).sqrt();
        var expected = cat(new[] { Norm(maps[0].mean(new long[] { 2, 3 })), Norm(maps[1].mean(new long[] { 2, 3 })), Norm(maps[2].mean(new long[] { 2, 3 })), fx["out.features"] }, 1);
        for (int i = 0; i < 2; i++) TensorAssert.Close(tensor(outputs[i].Features), expected[i], 1e-4, $"row {i}");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions { Layers = 5 }, model).Fit(data));
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
