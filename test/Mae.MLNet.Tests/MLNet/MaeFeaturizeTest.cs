using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.MLNet;

[TestClass]
public class MaeFeaturizeTest
{
    const int Size = 16, Channels = 3, Length = Channels * Size * Size;

    static readonly MaeConfig Config = new()
    {
        ImageSize = Size, PatchSize = 4, InChannels = Channels, EmbedDim = 32, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    public sealed class Row
    {
        public string Name { get; set; } = "";
        [VectorType(Length)] public float[] Pixels { get; set; } = Array.Empty<float>();
        [VectorType(2)] public float[] Extra { get; set; } = Array.Empty<float>();
    }

    public sealed class Output
    {
        public string Name { get; set; } = "";
        public float[] Features { get; set; } = Array.Empty<float>();
        public float[] Extra { get; set; } = Array.Empty<float>();
    }

    static List<Row> MakeRows(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(i => new Row
        {
            Name = $"img{i}",
            Pixels = Enumerable.Range(0, Length).Select(_ => (float)rng.NextDouble()).ToArray(),
            Extra = new float[] { i, -i },
        }).ToList();
    }

    /// <summary>Features straight from the model: ((x − mean) / std) → ExtractFeatures.</summary>
    static float[] Direct(MaeEncoder encoder, float[] pixels, MaePooling pooling)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(pixels).reshape(1, Channels, Size, Size);
        var mean = tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(1, 3, 1, 1);
        var std = tensor(new[] { 0.229f, 0.224f, 0.225f }).reshape(1, 3, 1, 1);
        return encoder.ExtractFeatures((x - mean) / std, pooling).data<float>().ToArray();
    }

    [TestMethod]
    [DataRow(MaePooling.Cls, 3)]
    [DataRow(MaePooling.Mean, 4)]
    public void BatchedTransformEqualsTheModelRowByRowAndPassesColumnsThrough(MaePooling pooling, int batch)
    {
        var ml = new MLContext(seed: 1);
        TorchRuntime.Seed(3);
        using var encoder = new MaeEncoder(Config);
        var rows = MakeRows(7, 11); // 7 rows: batches of 3 + 3 + 1 (or 4 + 3), last one partial
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, pooling, batch, MaeDevice.Cpu).Fit(data);
        var output = ml.Data.CreateEnumerable<Output>(model.Transform(data), reuseRowObject: false).ToList();
        Assert.AreEqual(7, output.Count);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.AreEqual(rows[i].Name, output[i].Name);
            CollectionAssert.AreEqual(rows[i].Extra, output[i].Extra);
            var expected = Direct(encoder, rows[i].Pixels, pooling);
            Assert.AreEqual(32, output[i].Features.Length);
            for (int k = 0; k < expected.Length; k++) Assert.AreEqual(expected[k], output[i].Features[k], 1e-5f, $"row {i} feature {k}");
        }
        var schema = model.GetOutputSchema(data.Schema);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 32), schema["Features"].Type);
    }

    [TestMethod]
    public void PredictionEngineGivesTheSameFeatures()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = new MaeEncoder(Config);
        var rows = MakeRows(3, 5);
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.MaeFeaturize("Features", "Pixels", encoder, device: MaeDevice.Cpu).Fit(data);
        Assert.IsTrue(model.IsRowToRowMapper);
        var engine = ml.Model.CreatePredictionEngine<Row, Output>(model);
        foreach (var row in rows)
        {
            var expected = Direct(encoder, row.Pixels, MaePooling.Cls);
            var actual = engine.Predict(row).Features;
            for (int k = 0; k < expected.Length; k++) Assert.AreEqual(expected[k], actual[k], 1e-5f);
        }
    }

    [TestMethod]
    public void ImageColumnsAreConvertedInside()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = new MaeEncoder(Config);
        var rows = MakeRows(2, 7);
        // Quantise to bytes so both paths see the same pixels.
        foreach (var r in rows) r.Pixels = r.Pixels.Select(v => MathF.Round(v * 255) / 255).ToArray();
        var images = rows.Select(r =>
        {
            var bgra = new byte[Size * Size * 4];
            for (int i = 0; i < Size * Size; i++)
            {
                bgra[4 * i + 2] = (byte)MathF.Round(r.Pixels[i] * 255);                   // R
                bgra[4 * i + 1] = (byte)MathF.Round(r.Pixels[Size * Size + i] * 255);     // G
                bgra[4 * i + 0] = (byte)MathF.Round(r.Pixels[2 * Size * Size + i] * 255); // B
                bgra[4 * i + 3] = 255;
            }
            return new ImageRow { Image = MLImage.CreateFromPixels(Size, Size, MLPixelFormat.Bgra32, bgra) };
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(images);
        var model = ml.Transforms.MaeFeaturize("Features", "Image", encoder, device: MaeDevice.Cpu).Fit(data);
        var output = ml.Data.CreateEnumerable<FeaturesOnly>(model.Transform(data), reuseRowObject: false).ToList();
        for (int i = 0; i < rows.Count; i++)
        {
            var expected = Direct(encoder, rows[i].Pixels, MaePooling.Cls);
            for (int k = 0; k < expected.Length; k++) Assert.AreEqual(expected[k], output[i].Features[k], 1e-4f);
        }
    }

    public sealed class ImageRow { [Microsoft.ML.Transforms.Image.ImageType(Size, Size)] public MLImage? Image { get; set; } }
    public sealed class FeaturesOnly { public float[] Features { get; set; } = Array.Empty<float>(); }

    public sealed class WrongSize { [VectorType(10)] public float[] Pixels { get; set; } = new float[10]; }
    public sealed class BoolColumn { public bool Pixels { get; set; } = true; }

    [TestMethod]
    public void BadInputsNameTheColumnAndWhatWasExpected()
    {
        var ml = new MLContext(seed: 1);
        using var encoder = new MaeEncoder(Config);
        var good = ml.Data.LoadFromEnumerable(MakeRows(2, 1));

        var e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize("F", "Missing", encoder).Fit(good));
        StringAssert.Contains(e.Message, "'Missing' was not found");

        e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", encoder).Fit(ml.Data.LoadFromEnumerable(new[] { new WrongSize() })));
        StringAssert.Contains(e.Message, "size 10");
        StringAssert.Contains(e.Message, "size 768");

        // (A text column is a column of image paths now; a Boolean one fits nothing.)
        e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", encoder).Fit(ml.Data.LoadFromEnumerable(new[] { new BoolColumn() })));
        StringAssert.Contains(e.Message, "has type Boolean");

        e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", encoder).Fit(ml.Data.LoadFromEnumerable(new List<Row>())));
        StringAssert.Contains(e.Message, "no rows");

        // A model whose image size does not match the column.
        using var big = new MaeEncoder(Config with { ImageSize = 32 });
        e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", big).Fit(good));
        StringAssert.Contains(e.Message, "size 3072");

        var nanRows = MakeRows(3, 2);
        nanRows[2].Pixels[5] = float.NaN;
        var nanData = ml.Data.LoadFromEnumerable(nanRows);
        var model = ml.Transforms.MaeFeaturize("F", "Pixels", encoder, device: MaeDevice.Cpu).Fit(nanData);
        var ex = Assert.Throws<InvalidOperationException>(() => ml.Data.CreateEnumerable<FeaturesOnlyF>(model.Transform(nanData), false).ToList());
        StringAssert.Contains(ex.Message, "Row 2");
        StringAssert.Contains(ex.Message, "NaN");

        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", encoder, batchSize: 0));
        e = Assert.Throws<ArgumentException>(() => ml.Transforms.MaeFeaturize(new MaeFeaturizerOptions
            { InputColumnName = "Pixels", Normalization = new PixelNormalization { Mean = new[] { 0f }, Std = new[] { 1f } } }, encoder));
        StringAssert.Contains(e.Message, "3 channels");
    }

    public sealed class FeaturesOnlyF { public float[] F { get; set; } = Array.Empty<float>(); }
}
