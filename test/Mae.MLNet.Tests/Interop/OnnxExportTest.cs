using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Model;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Interop;

/// <summary>
/// The exported ONNX graphs, scored by ONNX Runtime, against the TorchSharp modules they were exported from
/// (all parameters randomised, so that every bias, norm affine and position embedding takes part).
/// </summary>
[TestClass]
public class OnnxExportTest
{
    /// <summary>max|onnx − torch| ≤ Tolerance · max(1, max|torch|).</summary>
    const double Tolerance = 1e-4;

    static readonly MaeConfig[] Configs =
    {
        // 16 px RGB, patch 4 (4×4 grid), 4 heads
        new() { ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 4,
                DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 },
        // 28 px grey, patch 7 (4×4 grid), 3 heads, a non-default LayerNorm eps
        new() { ImageSize = 28, PatchSize = 7, InChannels = 1, EmbedDim = 24, Depth = 2, NumHeads = 3,
                DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2, LayerNormEps = 1e-5 },
        // 20 px RGB, patch 4 (5×5 grid: quadrants that share the middle row and column)
        new() { ImageSize = 20, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 4,
                DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2 },
    };

    static readonly float[] ImageNetMean = { 0.485f, 0.456f, 0.406f };
    static readonly float[] ImageNetStd = { 0.229f, 0.224f, 0.225f };

    static MaeOnnxOptions Normalising(MaeConfig cfg, MaeOnnxOptions options)
    {
        options.Normalization = new PixelNormalization
        {
            Scale = 1f / 255, Mean = cfg.InChannels == 3 ? ImageNetMean : new[] { 0.286f }, Std = cfg.InChannels == 3 ? ImageNetStd : new[] { 0.353f },
        };
        return options;
    }

    /// <summary>Replaces every parameter with seeded random values of a sensible scale.</summary>
    static void Randomise(nn.Module module, int seed)
    {
        var gen = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in module.named_parameters())
        {
            using var scope = NewDisposeScope();
            var r = randn(p.shape, generator: gen);
            Tensor value = name.EndsWith("weight") && p.dim() >= 2
                ? r / Math.Sqrt(p[0].numel())                      // Linear/Conv: ~unit-variance outputs
                : name.EndsWith("weight") ? 1 + 0.2 * r             // LayerNorm scale
                : 0.3 * r;                                          // biases, cls token, position embeddings
            p.copy_(value);
        }
    }

    /// <summary>Pixels as the graph takes them (0..255 when normalising inside, else standard normal).</summary>
    static Tensor Images(MaeConfig cfg, int batch, bool bytePixels, int seed)
    {
        var gen = new Generator((ulong)seed);
        var shape = new long[] { batch, cfg.InChannels, cfg.ImageSize, cfg.ImageSize };
        return bytePixels ? rand(shape, generator: gen) * 255 : randn(shape, generator: gen);
    }

    /// <summary>The normalisation, written independently in TorchSharp.</summary>
    static Tensor Normalise(Tensor images, MaeOnnxOptions o)
    {
        if (o.Normalization is not { } n) return images;
        long c = images.shape[1];
        return (images * n.Scale - tensor(n.Mean).reshape(1, c, 1, 1)) / tensor(n.Std).reshape(1, c, 1, 1);
    }

    static byte[] Bytes(ModelProto model)
    {
        using var ms = new MemoryStream();
        using (var output = new Google.Protobuf.CodedOutputStream(ms, leaveOpen: true)) model.WriteTo(output);
        return ms.ToArray();
    }

    static byte[] ExportBytes(Action<Stream> export)
    {
        using var ms = new MemoryStream();
        export(ms);
        return ms.ToArray();
    }

    static InferenceSession Session(byte[] model, bool optimise = true)
    {
        using var so = new SessionOptions();
        so.IntraOpNumThreads = 1;
        if (!optimise) so.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
        return new InferenceSession(model, so);
    }

    /// <summary>Runs the session on <paramref name="images"/> (flattened per row for FlatChw); returns the outputs
    /// as [N, k] tensors.</summary>
    static Dictionary<string, Tensor> Run(InferenceSession session, MaeOnnxOptions o, Tensor images, params string[] outputs)
    {
        long n = images.shape[0];
        var shape = o.InputLayout == MaeOnnxOptions.Layout.FlatChw ? new[] { n, images[0].numel() } : images.shape;
        var data = images.contiguous().data<float>().ToArray();
        using var input = OrtValue.CreateTensorValueFromMemory(data, shape);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, new[] { o.InputName }, new[] { input }, outputs);
        var map = new Dictionary<string, Tensor>();
        for (int i = 0; i < outputs.Length; i++)
        {
            var r = results[i];
            map[outputs[i]] = tensor(r.GetTensorDataAsSpan<float>().ToArray(), r.GetTensorTypeAndShape().Shape);
        }
        return map;
    }

    static double MaxAbsDiff(Tensor actual, Tensor expected, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double diff = (actual - expected).abs().max().item<float>();
        double scale = Math.Max(1.0, expected.abs().max().item<float>());
        Console.WriteLine($"{what}: max |onnx - torch| = {diff:E2} (output scale {scale:F2})");
        Assert.IsTrue(diff <= Tolerance * scale, $"{what}: max |onnx − torch| = {diff:E2} > {Tolerance:E0} · {scale:F2}");
        return diff;
    }

    [TestMethod]
    [DataRow(0, MaePooling.Cls, false, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(0, MaePooling.Mean, false, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(0, MaePooling.Cls, true, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(0, MaePooling.Mean, true, MaeOnnxOptions.Layout.Nchw)]
    [DataRow(1, MaePooling.Cls, true, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(1, MaePooling.Mean, true, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(1, MaePooling.Cls, false, MaeOnnxOptions.Layout.Nchw)]
    [DataRow(1, MaePooling.Mean, false, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(0, MaePooling.Quadrants, true, MaeOnnxOptions.Layout.Nchw)]
    [DataRow(1, MaePooling.Quadrants, false, MaeOnnxOptions.Layout.FlatChw)]
    [DataRow(2, MaePooling.Quadrants, true, MaeOnnxOptions.Layout.FlatChw)]
    public void EncoderFeaturesMatchTorchSharp(int config, MaePooling pooling, bool normalise, MaeOnnxOptions.Layout layout)
    {
        var cfg = Configs[config];
        using var encoder = new MaeEncoder(cfg);
        Randomise(encoder, 10 + config);
        var options = new MaeOnnxOptions { Pooling = pooling, InputLayout = layout };
        if (normalise) Normalising(cfg, options);
        var bytes = ExportBytes(s => MaeOnnxExport.Export(encoder, s, options));

        using var session = Session(bytes);
        // One session, two batch sizes: the batch dimension is symbolic.
        foreach (int batch in new[] { 1, 5 })
        {
            using var scope = NewDisposeScope();
            var images = Images(cfg, batch, normalise, 100 + batch);
            Tensor expected;
            using (no_grad()) expected = encoder.ExtractFeatures(Normalise(images, options), pooling);
            var actual = Run(session, options, images, "features")["features"];
            MaxAbsDiff(actual, expected, $"encoder cfg{config} {pooling} norm={normalise} {layout} batch {batch}");
        }
    }

    [TestMethod]
    public void UnoptimisedGraphMatchesTorchSharpToo()
    {
        // ONNX Runtime fuses LayerNormalization, GELU and attention patterns by default; the graph as written must
        // compute the same thing op by op.
        var cfg = Configs[0];
        using var encoder = new MaeEncoder(cfg);
        Randomise(encoder, 7);
        var options = Normalising(cfg, new MaeOnnxOptions { Pooling = MaePooling.Mean });
        using var session = Session(ExportBytes(s => MaeOnnxExport.Export(encoder, s, options)), optimise: false);
        using var scope = NewDisposeScope();
        var images = Images(cfg, 3, true, 5);
        Tensor expected;
        using (no_grad()) expected = encoder.ExtractFeatures(Normalise(images, options), MaePooling.Mean);
        MaxAbsDiff(Run(session, options, images, "features")["features"], expected, "unoptimised encoder");
    }

    [TestMethod]
    [DataRow(0, true, false)]
    [DataRow(0, false, true)]
    [DataRow(1, true, true)]
    [DataRow(1, false, false)]
    public void ClassifierOutputsMatchTorchSharp(int config, bool globalPool, bool normalise)
    {
        var cfg = Configs[config];
        const int classes = 7;
        using var model = new VitClassifier(cfg, classes, globalPool);
        Randomise(model, 20 + config);
        var options = new MaeOnnxOptions { LogitsName = "score" };
        if (normalise) Normalising(cfg, options);
        using var session = Session(ExportBytes(s => MaeOnnxExport.Export(model, s, options)));
        CollectionAssert.AreEquivalent(new[] { "features", "score", "probabilities" }, session.OutputMetadata.Keys.ToArray());

        foreach (int batch in new[] { 1, 5 })
        {
            using var scope = NewDisposeScope();
            var images = Images(cfg, batch, normalise, 200 + batch);
            Tensor features, logits;
            using (no_grad())
            {
                var x = Normalise(images, options);
                features = model.ForwardFeatures(x);
                logits = model.forward(x);
            }
            var outs = Run(session, options, images, "features", "score", "probabilities");
            string what = $"classifier cfg{config} globalPool={globalPool} norm={normalise} batch {batch}";
            MaxAbsDiff(outs["features"], features, what + " features");
            MaxAbsDiff(outs["score"], logits, what + " logits");
            MaxAbsDiff(outs["probabilities"], logits.softmax(-1), what + " probabilities");
        }
    }

    /// <summary>A ConvNeXt V2 classifier with timm's weights (fixture A: conv_mlp layout, GRN, LayerNorm over channels):
    /// the ONNX features and logits against timm's own outputs, optimised and op by op; NCHW and flat input; and the
    /// multi-stage featurizer (last 3 stages) against TorchSharp. No opset op outside what ONNX Runtime runs.</summary>
    [TestMethod]
    public void ConvNextV2OutputsMatchTimmAndTorchSharp()
    {
        using var fx = new Mae.MLNet.Tests.Model.ConvNextFixture("convnextv2_a");
        using var model = new ConvNextV2(fx.Config, 5);
        fx.LoadInto(model, "param.");
        var images = fx["input.images"];
        foreach (var (layout, optimise) in new[] { (MaeOnnxOptions.Layout.Nchw, true), (MaeOnnxOptions.Layout.FlatChw, false) })
        {
            var options = new MaeOnnxOptions { InputLayout = layout };
            using var session = Session(ExportBytes(s => MaeOnnxExport.Export(model, s, options)), optimise);
            CollectionAssert.AreEquivalent(new[] { "features", "logits", "probabilities" }, session.OutputMetadata.Keys.ToArray());
            var outs = Run(session, options, images, "features", "logits", "probabilities");
            MaxAbsDiff(outs["features"], fx["out.features"], $"ConvNeXt V2 features vs timm ({layout}, optimised {optimise})");
            MaxAbsDiff(outs["logits"], fx["out.logits"], $"ConvNeXt V2 logits vs timm ({layout}, optimised {optimise})");
            MaxAbsDiff(outs["probabilities"], fx["out.logits"].softmax(-1), "ConvNeXt V2 probabilities");
        }
        using var encoder = new ConvNextV2(fx.Config);
        fx.LoadInto(encoder, "param.", skip: "head.fc.");
        var multi = Normalising(ConvNextGeometry(fx.Config), new MaeOnnxOptions { Layers = 3 });
        using var multiSession = Session(ExportBytes(s => MaeOnnxExport.Export(encoder, s, multi)));
        Assert.IsFalse(multiSession.OutputMetadata.ContainsKey("logits"), "a featurizer has no logits");
        using var scope = NewDisposeScope();
        Tensor expected;
        using (no_grad()) expected = encoder.ForwardFeatures(Normalise(images, multi), 3);
        Assert.AreEqual(8 + 12 + 16 + 24 - 8, expected.shape[1]);
        MaxAbsDiff(Run(multiSession, multi, images, "features")["features"], expected, "ConvNeXt V2 last 3 stages");
        Assert.ThrowsExactly<ArgumentException>(() => MaeOnnxExport.BuildModel(model, new MaeOnnxOptions { Layers = 2 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeOnnxExport.BuildModel(encoder, new MaeOnnxOptions { Layers = 5 }));
    }

    static MaeConfig ConvNextGeometry(ConvNextV2Config c) => new() { ImageSize = c.ImageSize, InChannels = c.InChannels, PatchSize = c.TotalStride };

    [TestMethod]
    public void ExportIsAValidOpset17ModelWithTheDeclaredSignature()
    {
        var cfg = Configs[1];
        using var encoder = new MaeEncoder(cfg);
        var options = new MaeOnnxOptions { InputName = "Pixels", FeaturesName = "Features" };
        var bytes = ExportBytes(s => MaeOnnxExport.Export(encoder, s, options));

        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.AreEqual(8L, model.IrVersion);
        Assert.AreEqual(1, model.OpsetImport.Count);
        Assert.AreEqual("", model.OpsetImport[0].Domain);
        Assert.AreEqual(17L, model.OpsetImport[0].Version);

        var input = model.Graph.Input.Single();
        Assert.AreEqual("Pixels", input.Name);
        Assert.AreEqual((int)TensorProto.Types.DataType.Float, input.Type.TensorType.ElemType);
        var inDims = input.Type.TensorType.Shape.Dim;
        Assert.AreEqual(2, inDims.Count);
        Assert.AreEqual("batch", inDims[0].DimParam);
        Assert.AreEqual(1L * 28 * 28, inDims[1].DimValue);
        var output = model.Graph.Output.Single();
        Assert.AreEqual("Features", output.Name);
        Assert.AreEqual("batch", output.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.AreEqual(24L, output.Type.TensorType.Shape.Dim[1].DimValue);

        // The ops an opset-17 runtime must provide; one LayerNormalization per norm (2 per block + final).
        var ops = model.Graph.Node.Select(n => n.OpType).ToHashSet();
        var allowed = new HashSet<string> { "Reshape", "Conv", "Transpose", "Add", "Shape", "Concat", "Expand",
            "LayerNormalization", "MatMul", "Gather", "Mul", "Softmax", "Erf", "Gather", "Slice", "ReduceMean", "Sub", "Div" };
        CollectionAssert.IsSubsetOf(ops.ToArray(), allowed.ToArray(), "ops: " + string.Join(", ", ops));
        Assert.AreEqual(2 * cfg.Depth + 1, model.Graph.Node.Count(n => n.OpType == "LayerNormalization"));
        Assert.AreEqual(cfg.Depth, model.Graph.Node.Count(n => n.OpType == "Erf"));
        // Every node output and initializer name is unique (SSA).
        var produced = model.Graph.Node.SelectMany(n => n.Output).Concat(model.Graph.Initializer.Select(t => t.Name)).ToList();
        Assert.AreEqual(produced.Count, produced.Distinct().Count(), "duplicate value names");
        // Every weight is there: the initializers hold exactly the encoder's parameter count
        // (cls_token and pos_embed[0] are folded into one [1, 1, D] table).
        long weights = model.Graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Float && t.Dims.Count > 0)
            .Sum(t => t.Dims.Aggregate(1L, (a, d) => a * d));
        long parameters = encoder.parameters().Sum(p => p.numel());
        Assert.AreEqual(parameters - cfg.EmbedDim, weights);
        Assert.AreEqual("28", model.MetadataProps.Single(p => p.Key == "mae.image_size").Value);

        // ONNX Runtime reads the same signature: -1 for the symbolic batch.
        using var session = Session(bytes);
        CollectionAssert.AreEqual(new[] { -1, 784 }, session.InputMetadata["Pixels"].Dimensions);
        CollectionAssert.AreEqual(new[] { -1, 24 }, session.OutputMetadata["Features"].Dimensions);
        Assert.AreEqual("batch", session.InputMetadata["Pixels"].SymbolicDimensions[0]);
    }

    [TestMethod]
    public void ClassifierWithoutProbabilitiesHasTwoOutputs()
    {
        using var model = new VitClassifier(Configs[0], 3, globalPool: true);
        var proto = MaeOnnxExport.BuildModel(model, new MaeOnnxOptions { ProbabilitiesName = null });
        CollectionAssert.AreEqual(new[] { "features", "logits" }, proto.Graph.Output.Select(o => o.Name).ToArray());
        Assert.AreEqual(3L, proto.Graph.Output[1].Type.TensorType.Shape.Dim[1].DimValue);
        Assert.IsFalse(proto.Graph.Node.Any(n => n.OpType == "Softmax" && n.Output[0] == "probabilities"));
    }

    [TestMethod]
    public void ExportOnnxWritesTheFileAtomically()
    {
        var dir = Path.Combine(Path.GetTempPath(), "mae-onnx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var cfg = Configs[0];
            using var mae = new MaskedAutoencoder(cfg);
            Randomise(mae, 3);
            string path = Path.Combine(dir, "encoder.onnx");
            File.WriteAllText(path, "old content");
            MaeOnnxExport.Export(mae.Encoder, path, new MaeOnnxOptions { Pooling = MaePooling.Mean });
            Assert.AreEqual(1, Directory.GetFiles(dir).Length, "no temporary file left: " + string.Join(", ", Directory.GetFiles(dir)));

            // A bad option fails before anything is written: the file keeps its content.
            var before = File.ReadAllBytes(path);
            Assert.ThrowsExactly<ArgumentException>(() => MaeOnnxExport.Export(mae.Encoder, path, new MaeOnnxOptions { Normalization = new() { Std = new[] { 1f, 0f, 1f } } }));
            CollectionAssert.AreEqual(before, File.ReadAllBytes(path));

            using var session = new InferenceSession(path);
            using var scope = NewDisposeScope();
            var images = Images(cfg, 2, false, 9);
            Tensor expected;
            using (no_grad()) expected = mae.Encoder.ExtractFeatures(images, MaePooling.Mean);
            MaxAbsDiff(Run(session, new MaeOnnxOptions(), images, "features")["features"], expected, "ExportOnnx file");

            using var classifier = new VitClassifier(cfg, 4);
            string cpath = Path.Combine(dir, "classifier.onnx");
            MaeOnnxExport.Export(classifier, cpath);
            Assert.AreEqual(3, ModelProto.Parser.ParseFrom(File.ReadAllBytes(cpath)).Graph.Output.Count);
            Assert.AreEqual(2, Directory.GetFiles(dir).Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void BadOptionsThrowArgumentExceptionNamingExpectedAndActual()
    {
        using var encoder = new MaeEncoder(Configs[0]);   // 3 channels
        void Bad(MaeOnnxOptions o, params string[] fragments)
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => MaeOnnxExport.BuildModel(encoder, o));
            foreach (var f in fragments) StringAssert.Contains(e.Message, f);
        }
        Bad(new() { Normalization = new() { Mean = new[] { 0.5f, 0.5f } } }, "Normalization", "2 means", "3 channels");
        Bad(new() { Normalization = new() { Std = new[] { 0.5f } } }, "Normalization", "1 standard deviations", "3 channels");
        Bad(new() { Normalization = new() { Std = new[] { 0.5f, 0f, 0.5f } } }, "Std[1]", "positive", "got 0");
        Bad(new() { Normalization = new() { Std = new[] { 0.5f, 0.5f, -1f } } }, "Std[2]", "got -1");
        Bad(new() { Normalization = new() { Std = new[] { float.NaN, 0.5f, 0.5f } } }, "Std[0]", "NaN");
        Bad(new() { Normalization = new() { Mean = new[] { 0f, float.PositiveInfinity, 0f } } }, "Mean[1]", "finite");
        Bad(new() { Normalization = new() { Scale = 0 } }, "Scale", "got 0");
        Bad(new() { InputName = " " }, "InputName");
        Bad(new() { FeaturesName = "pixels" }, "distinct", "'pixels'");
        Bad(new() { Pooling = (MaePooling)7 }, "Pooling", "7");

        using var classifier = new VitClassifier(Configs[1], 2);   // 1 channel
        var e = Assert.ThrowsExactly<ArgumentException>(() =>
            MaeOnnxExport.BuildModel(classifier, new MaeOnnxOptions { Normalization = new() }));
        StringAssert.Contains(e.Message, "3 means and 3 standard deviations; the images have 1 channels");
        e = Assert.ThrowsExactly<ArgumentException>(() =>
            MaeOnnxExport.BuildModel(classifier, new MaeOnnxOptions { ProbabilitiesName = "logits" }));
        StringAssert.Contains(e.Message, "'logits'");
        Assert.ThrowsExactly<ArgumentNullException>(() => MaeOnnxExport.BuildModel((MaeEncoder)null!));
        Assert.ThrowsExactly<ArgumentException>(() => MaeOnnxExport.Export(encoder, ""));
    }
}
