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
}
