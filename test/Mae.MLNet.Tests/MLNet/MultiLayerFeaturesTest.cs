using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Onnx;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>Multi-layer features: pooled tokens of the last k blocks, each through the final norm, concatenated —
/// in the encoder, in MaeFeaturize, and in the saved model zip (ONNX).</summary>
[TestClass]
public class MultiLayerFeaturesTest
{
    const int Size = 16, Length = 3 * Size * Size;

    static readonly MaeConfig Config = new()
    {
        ImageSize = Size, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 3, NumHeads = 4,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    public sealed class Item
    {
        [VectorType(Length)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    public sealed class Featurized
    {
        public float[] Features { get; set; } = Array.Empty<float>();
    }

    /// <summary>The reference, written out from the encoder's parts: blocks one by one, the final norm on each of the
    /// last k outputs, cls token, patch mean or torch's adaptive 2 × 2 average pooling of the patch grid (quadrants,
    /// row-major, each D wide), concatenated earliest first.</summary>
    static Tensor Reference(MaeEncoder encoder, Tensor images, MaePooling pooling, int k)
    {
        var x = encoder.PrependCls(encoder.Embed(images));
        var outputs = new List<Tensor>();
        foreach (var block in encoder.blocks) outputs.Add(x = block.forward(x));
        int g = encoder.Config.GridSize;
        var pooled = outputs.Skip(outputs.Count - k).Select(o => encoder.norm.forward(o))
            .Select(t => pooling switch
            {
                MaePooling.Cls => t[.., 0, ..],
                MaePooling.Mean => t[.., 1.., ..].mean(new long[] { 1 }),
                _ => nn.functional.adaptive_avg_pool2d(t[.., 1.., ..].transpose(1, 2).reshape(t.shape[0], -1, g, g), new long[] { 2, 2 })
                    .flatten(2).transpose(1, 2).reshape(t.shape[0], -1),   // [N, D, 2, 2] → [N, 4·D], quadrant-major
            });
        return cat(pooled.ToArray(), 1);
    }

    [TestMethod]
    [DataRow(MaePooling.Cls, 1)]
    [DataRow(MaePooling.Mean, 2)]
    [DataRow(MaePooling.Cls, 3)]
    [DataRow(MaePooling.Quadrants, 1)]
    [DataRow(MaePooling.Quadrants, 2)]
    public void EncoderConcatenatesTheLastBlocks(MaePooling pooling, int k)
    {
        TorchRuntime.Seed(2);
        using var encoder = new MaeEncoder(Config);
        using var noGrad = no_grad();
        var images = randn(5, 3, Size, Size);
        var features = encoder.ExtractFeatures(images, pooling, k);
        CollectionAssert.AreEqual(new long[] { 5, MaeEncoder.FeatureWidth(Config, pooling, k) }, features.shape);
        Assert.AreEqual((pooling == MaePooling.Quadrants ? 4 : 1) * 32 * k, MaeEncoder.FeatureWidth(Config, pooling, k));
        Assert.IsTrue(features.allclose(Reference(encoder, images, pooling, k), rtol: 0, atol: 1e-6));
        if (k == 1)   // the last block's feature is the full forward pass's token (on an even grid, the quadrants' mean is the mean)
        {
            var tokens = encoder.forward(images);
            var expected = pooling == MaePooling.Cls ? tokens[.., 0, ..] : tokens[.., 1.., ..].mean(new long[] { 1 });
            var actual = pooling == MaePooling.Quadrants ? features.reshape(5, 4, 32).mean(new long[] { 1 }) : features;
            Assert.IsTrue(actual.allclose(expected, rtol: 0, atol: 1e-6));
        }
    }

    /// <summary>The attentive probe's input: the last k blocks' patch tokens after the final norm, concatenated per
    /// patch; their mean over the patches is the multi-layer mean feature.</summary>
    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void PatchTokensConcatenateTheLastBlocksPerPatch(int k)
    {
        TorchRuntime.Seed(3);
        using var encoder = new MaeEncoder(Config);
        using var noGrad = no_grad();
        var images = randn(4, 3, Size, Size);
        var tokens = encoder.PatchTokens(images, k);
        CollectionAssert.AreEqual(new long[] { 4, Config.NumPatches, 32 * k }, tokens.shape);
        var x = encoder.PrependCls(encoder.Embed(images));
        var outputs = new List<Tensor>();
        foreach (var block in encoder.blocks) outputs.Add(x = block.forward(x));
        var expected = cat(outputs.Skip(outputs.Count - k).Select(o => encoder.norm.forward(o)[.., 1.., ..]).ToArray(), 2);
        Assert.IsTrue(tokens.allclose(expected, rtol: 0, atol: 1e-6));
        Assert.IsTrue(tokens.mean(new long[] { 1 }).allclose(Reference(encoder, images, MaePooling.Mean, k), rtol: 0, atol: 1e-6));
        if (k == 1) Assert.IsTrue(tokens.allclose(encoder.forward(images)[.., 1.., ..], rtol: 0, atol: 1e-6));
    }

    /// <summary>An odd patch grid (5 × 5): the quadrants are adaptive pooling's cells, 3 × 3 patches each, sharing the
    /// middle row and column; the first quadrant written out by hand too.</summary>
    [TestMethod]
    public void QuadrantsOfAnOddGridAreAdaptivePoolingsCells()
    {
        var cfg = Config with { ImageSize = 20 };
        TorchRuntime.Seed(4);
        using var encoder = new MaeEncoder(cfg);
        using var noGrad = no_grad();
        var images = randn(3, 3, 20, 20);
        var features = encoder.ExtractFeatures(images, MaePooling.Quadrants, 2);
        Assert.IsTrue(features.allclose(Reference(encoder, images, MaePooling.Quadrants, 2), rtol: 0, atol: 1e-6));
        var tokens = encoder.forward(images)[.., 1.., ..];
        var topLeft = tokens.index_select(1, tensor(new long[] { 0, 1, 2, 5, 6, 7, 10, 11, 12 })).mean(new long[] { 1 });
        Assert.IsTrue(features[.., (4 * 32)..(5 * 32)].allclose(topLeft, rtol: 0, atol: 1e-6), "the last block's top-left quadrant");
    }

    [TestMethod]
    public void UndefinedPoolingIsRefused()
    {
        using var encoder = new MaeEncoder(Config);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => encoder.ExtractFeatures(zeros(1, 3, Size, Size), (MaePooling)9));
        StringAssert.Contains(ex.Message, "Cls, Mean or Quadrants; got 9");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeEncoder.FeatureWidth(Config, (MaePooling)9, 1));
        ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeEncoder.FeatureWidth(Config with { PatchSize = Size }, MaePooling.Quadrants, 1));
        StringAssert.Contains(ex.Message, "at least 2 × 2; got 1 × 1");
    }

    [TestMethod]
    public void LayersOutsideTheDepthAreRefused()
    {
        using var encoder = new MaeEncoder(Config);
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => encoder.ExtractFeatures(zeros(1, 3, Size, Size), MaePooling.Cls, 4));
        StringAssert.Contains(ex.Message, "expected 1 … 3");
        ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => encoder.PatchTokens(zeros(1, 3, Size, Size), 0));
        StringAssert.Contains(ex.Message, "expected 1 … 3");
        var ml = new MLContext(0);
        ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.MaeFeaturize(
            new MaeFeaturizerOptions { InputColumnName = "Pixels", Layers = 0 }, encoder));
        StringAssert.Contains(ex.Message, "Layers");
    }

    [TestMethod]
    [DataRow(MaePooling.Mean, 2)]
    [DataRow(MaePooling.Quadrants, 2)]
    public void FeaturizerAndSavedZipGiveTheConcatenatedFeatures(MaePooling pooling, int k)
    {
        int width = MaeEncoder.FeatureWidth(Config, pooling, k);
        TorchRuntime.Seed(3);
        using var encoder = new MaeEncoder(Config);
        var rng = new Random(1);
        var items = Enumerable.Range(0, 7).Select(_ => new Item { Pixels = Enumerable.Range(0, Length).Select(_ => (float)rng.NextDouble()).ToArray() }).ToList();
        var ml = new MLContext(0);
        var data = ml.Data.LoadFromEnumerable(items);
        var norm = PixelNormalization.Default(3);
        var model = ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions
        {
            InputColumnName = "Pixels", OutputColumnName = "Features", Pooling = pooling, Layers = k, BatchSize = 3,
            Device = MaeDevice.Cpu,
        }, encoder).Fit(data);
        var schemaType = (VectorDataViewType)model.GetOutputSchema(data.Schema)["Features"].Type;
        Assert.AreEqual(width, schemaType.Size);
        var rows = ml.Data.CreateEnumerable<Featurized>(model.Transform(data), false).ToList();

        using (var noGrad = no_grad())
        {
            var x = tensor(items.SelectMany(i => i.Pixels).ToArray(), 7, 3, Size, Size);
            x = (x * norm.Scale - tensor(norm.Mean).reshape(1, 3, 1, 1)) / tensor(norm.Std).reshape(1, 3, 1, 1);
            var expected = Reference(encoder, x, pooling, k).data<float>().ToArray();
            var actual = rows.SelectMany(r => r.Features).ToArray();
            Assert.AreEqual(expected.Length, actual.Length);
            for (int i = 0; i < actual.Length; i++) Assert.AreEqual(expected[i], actual[i], 1e-5, $"value {i}");
        }

        string path = Path.Combine(Path.GetTempPath(), $"mae-layers-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext(1).Model.Load(path, out _);
            Assert.IsInstanceOfType<OnnxTransformer>(loaded is TransformerChain<ITransformer> chain ? chain.First() : loaded);
            var after = ml.Data.CreateEnumerable<Featurized>(loaded.Transform(data), false).ToList();
            for (int r = 0; r < rows.Count; r++)
                for (int i = 0; i < width; i++) Assert.AreEqual(rows[r].Features[i], after[r].Features[i], 1e-4, $"row {r} value {i}");
        }
        finally { File.Delete(path); }
    }
}
