using System.Globalization;
using System.Reflection;
using Mae.MLNet.Model;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using Mae.MLNet.Runtime;
using static Mae.MLNet.Interop.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop.Onnx;

/// <summary>
/// Writes the MAE encoder (with pooling) or a <see cref="VitClassifier"/> as an ONNX graph (opset 17, IR
/// version 8) that ONNX Runtime — and so ML.NET's <c>OnnxTransformer</c> — scores without libtorch. The graph
/// repeats the TorchSharp forward pass op for op: optional pixel normalisation, the patch-embedding convolution,
/// position embeddings, the cls token, each pre-norm block (LayerNormalization, fused qkv, softmax attention,
/// MLP with the exact erf GELU), the final norm and the pooling. The batch dimension is symbolic ("batch").
/// Weights are copied from the module as float32 initializers.
/// </summary>
public static partial class MaeOnnxExport
{
    /// <summary>The default-domain opset of the exported graphs (LayerNormalization needs 17).</summary>
    public const int Opset = 17;
    /// <summary>The ONNX IR version that goes with opset 17.</summary>
    public const long IrVersion = 8;
    /// <summary>Symbolic name of the batch dimension of every input and output.</summary>
    public const string BatchDim = "batch";

    // A protobuf message cannot be larger than 2 GiB; leave room for the graph itself.
    const long MaxWeightBytes = int.MaxValue - (64L << 20);

    /// <summary>Builds the encoder graph: pixels → <see cref="MaeEncoder.ExtractFeatures"/> with
    /// <see cref="MaeOnnxOptions.Pooling"/>.</summary>
    public static ModelProto BuildModel(MaeEncoder encoder, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        options ??= new MaeOnnxOptions();
        var cfg = encoder.Config;
        options.Validate(cfg);
        CheckSize(encoder.parameters(), "encoder");

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = new OnnxGraphBuilder("mae_encoder");
        var blockOutputs = BlockOutputs(g, encoder, Tokens(g, encoder, Input(g, cfg, options)));
        string pooledName = options.PerRow ? options.FeaturesName + "_batch" : options.FeaturesName;
        // Each of the last `Layers` blocks: final norm, pooling; several are concatenated (MaeEncoder.ExtractFeatures).
        string Pool(string tokens, string? name)
        {
            string x = LayerNorm(g, encoder.norm, tokens, cfg.LayerNormEps, "norm");
            return options.Pooling switch
            {
                MaePooling.Cls => ClsToken(g, x, name),
                MaePooling.Mean => MeanOfPatches(g, x, name),
                _ => MeanOfQuadrants(g, x, cfg.GridSize, name),
            };
        }
        var last = blockOutputs.Skip(blockOutputs.Count - options.Layers).ToList();
        string pooled = last.Count == 1
            ? Pool(last[0], pooledName)
            : g.Node("Concat", last.Select(t => Pool(t, null)).ToArray(), g.ExactName(pooledName), Attr("axis", 1L));
        Output(g, options, pooled, options.FeaturesName, MaeEncoder.FeatureWidth(cfg, options.Pooling, options.Layers));
        return Model(g, cfg, options, $"MAE encoder, {options.Pooling} pooling" + (options.Layers > 1 ? $" of the last {options.Layers} blocks" : ""),
            ("mae.pooling", options.Pooling.ToString().ToLowerInvariant()),
            ("mae.layers", options.Layers.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>Builds the classifier graph: pixels → features (<see cref="VitClassifier.ForwardFeatures"/>),
    /// logits (<see cref="VitClassifier.forward"/>) and, unless disabled, their softmax.</summary>
    public static ModelProto BuildModel(VitClassifier classifier, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(classifier);
        options ??= new MaeOnnxOptions();
        var cfg = classifier.Config;
        options.Validate(cfg, classifier: true);
        CheckSize(classifier.parameters(), "classifier");

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = new OnnxGraphBuilder("vit_classifier");
        var encoder = classifier.Encoder;
        string x = Blocks(g, encoder, Tokens(g, encoder, Input(g, cfg, options)));
        // PerRow: compute on the [1, …] batch, then reshape each output to one row ([D] / [K]) under its public name.
        string Name(string name) => options.PerRow ? name + "_batch" : name;
        string features = classifier.GlobalPool
            ? LayerNorm(g, classifier.fc_norm!, MeanOfPatches(g, x, null), cfg.LayerNormEps, "fc_norm", Name(options.FeaturesName))
            : ClsToken(g, LayerNorm(g, encoder.norm, x, cfg.LayerNormEps, "norm"), Name(options.FeaturesName));
        Output(g, options, features, options.FeaturesName, cfg.EmbedDim);
        string logits = Linear(g, classifier.head, features, "head", Name(options.LogitsName));
        Output(g, options, logits, options.LogitsName, classifier.NumClasses);
        if (options.ProbabilitiesName is not null)
        {
            string probabilities = g.Node("Softmax", new[] { logits }, g.ExactName(Name(options.ProbabilitiesName)), Attr("axis", -1L));
            Output(g, options, probabilities, options.ProbabilitiesName, classifier.NumClasses);
        }
        return Model(g, cfg, options, $"ViT classifier ({(classifier.GlobalPool ? "global pool + fc_norm" : "cls token")}), {classifier.NumClasses} classes",
            ("mae.pooling", classifier.GlobalPool ? "mean" : "cls"),
            ("mae.num_classes", classifier.NumClasses.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>Declares <paramref name="value"/> ([N, width]) as the graph output <paramref name="name"/>: as is, or
    /// reshaped to one row [width] (under that exact name) when <see cref="MaeOnnxOptions.PerRow"/>.</summary>
    static void Output(OnnxGraphBuilder g, MaeOnnxOptions options, string value, string name, long width)
    {
        if (!options.PerRow) { g.AddOutput(name, BatchDim, width); return; }
        g.Node("Reshape", new[] { value, g.Int64s(name + ".row_shape", width) }, g.ExactName(name));
        g.AddOutput(name, width);
    }

    /// <summary>Writes the encoder graph to <paramref name="stream"/> (left open).</summary>
    public static void Export(MaeEncoder encoder, Stream stream, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Write(BuildModel(encoder, options), stream);
    }

    /// <summary>Writes the encoder graph to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Export(MaeEncoder encoder, string path, MaeOnnxOptions? options = null)
    {
        CheckPath(path);
        var model = BuildModel(encoder, options);
        AtomicFile.Write(path, s => Write(model, s));
    }

    /// <summary>Writes the classifier graph to <paramref name="stream"/> (left open).</summary>
    public static void Export(VitClassifier classifier, Stream stream, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Write(BuildModel(classifier, options), stream);
    }

    /// <summary>Writes the classifier graph to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Export(VitClassifier classifier, string path, MaeOnnxOptions? options = null)
    {
        CheckPath(path);
        var model = BuildModel(classifier, options);
        AtomicFile.Write(path, s => Write(model, s));
    }

    /// <summary>Serializes the model with its SHA-256 as the last metadata entry (<see cref="OnnxDigest"/>).</summary>
    static void Write(ModelProto model, Stream stream) => OnnxDigest.Write(model, stream);

    static void CheckPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new ArgumentException($"Expected a file path for the ONNX model; got {(path is null ? "null" : $"'{path}'")}.", nameof(path));
    }

    static void CheckSize(IEnumerable<Parameter> parameters, string what)
    {
        long bytes = 0;
        foreach (var p in parameters) bytes += p.numel() * sizeof(float);
        if (bytes > MaxWeightBytes)
            throw new NotSupportedException(
                $"The {what} has {bytes / (1 << 20)} MiB of float32 weights; a single ONNX protobuf file holds at most 2 GiB " +
                "(external weight files are not supported by this exporter).");
    }

    static ModelProto Model(OnnxGraphBuilder g, MaeConfig cfg, MaeOnnxOptions options, string doc, params (string Key, string Value)[] extra)
    {
        var meta = new List<(string, string)>
        {
            ("mae.image_size", cfg.ImageSize.ToString(CultureInfo.InvariantCulture)),
            ("mae.patch_size", cfg.PatchSize.ToString(CultureInfo.InvariantCulture)),
            ("mae.in_channels", cfg.InChannels.ToString(CultureInfo.InvariantCulture)),
            ("mae.embed_dim", cfg.EmbedDim.ToString(CultureInfo.InvariantCulture)),
            ("mae.depth", cfg.Depth.ToString(CultureInfo.InvariantCulture)),
            ("mae.num_heads", cfg.NumHeads.ToString(CultureInfo.InvariantCulture)),
            ("mae.input_layout", options.InputLayout == MaeOnnxOptions.Layout.FlatChw ? "flat_chw" : "nchw"),
        };
        meta.AddRange(extra);
        return WithMetadata(g, doc, meta);
    }

    /// <summary>The graph as a model (IR version, opset, producer) with <paramref name="meta"/> as its metadata.</summary>
    static ModelProto WithMetadata(OnnxGraphBuilder g, string doc, IEnumerable<(string Key, string Value)> meta)
    {
        string version = typeof(MaeOnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
        var model = g.ToModel(IrVersion, Opset, "Mae.MLNet", version, doc);
        foreach (var (k, v) in meta) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    // ---- graph pieces ------------------------------------------------------------------------------------

    /// <summary>Declares the pixel input; returns the normalised [N, C, H, W] image batch.</summary>
    static string Input(OnnxGraphBuilder g, MaeConfig cfg, MaeOnnxOptions options)
    {
        long c = cfg.InChannels, s = cfg.ImageSize;
        string input = g.ExactName(options.InputName);
        string x;
        if (options.InputLayout == MaeOnnxOptions.Layout.FlatChw)
        {
            if (options.PerRow) g.AddInput(input, c * s * s); else g.AddInput(input, BatchDim, c * s * s);
            x = g.Node("Reshape", new[] { input, g.Int64s("image_shape", -1, c, s, s) }, g.UniqueName("images"));
        }
        else
        {
            if (options.PerRow)
            {
                g.AddInput(input, c, s, s);
                x = g.Node("Reshape", new[] { input, g.Int64s("image_shape", -1, c, s, s) }, g.UniqueName("images"));
            }
            else
            {
                g.AddInput(input, BatchDim, c, s, s);
                x = input;
            }
        }
        // PixelNormalization.Apply as graph nodes: the same (x · Scale − Mean[c]) / Std[c], in the same order.
        if (options.Normalization is not { } n || n.IsIdentity) return x;
        if (n.Scale != 1f)
            x = g.Node("Mul", new[] { x, g.Scalar("pixel_scale", n.Scale) }, g.UniqueName("scaled"));
        x = g.Node("Sub", new[] { x, g.AddInitializer("pixel_mean", n.Mean, 1, c, 1, 1) }, g.UniqueName("centered"));
        return g.Node("Div", new[] { x, g.AddInitializer("pixel_std", n.Std, 1, c, 1, 1) }, g.UniqueName("normalized"));
    }

    /// <summary>Patch embedding + pos_embed[1:], cls_token + pos_embed[0] prepended: [N, 1 + L, D].</summary>
    static string Tokens(OnnxGraphBuilder g, MaeEncoder encoder, string images)
    {
        var cfg = encoder.Config;
        long d = cfg.EmbedDim, l = cfg.NumPatches, p = cfg.PatchSize;
        var conv = encoder.patch_embed.proj;
        string y = g.Node("Conv",
            new[] { images, Weight(g, conv.weight!, "patch_embed.proj.weight"), Weight(g, conv.bias!, "patch_embed.proj.bias") },
            g.UniqueName("patch_grid"),
            Attr("kernel_shape", p, p), Attr("strides", p, p));
        // [N, D, g, g] → [N, D, L] → [N, L, D]
        y = g.Node("Reshape", new[] { y, g.Int64s("grid_to_seq_shape", 0, d, l) }, g.UniqueName("patch_seq"));
        y = g.Node("Transpose", new[] { y }, g.UniqueName("patch_tokens"), Attr("perm", 0L, 2L, 1L));

        var pos = encoder.pos_embed.detach();
        y = g.Node("Add", new[] { y, Weight(g, pos[.., 1.., ..], "pos_embed.patches") }, g.UniqueName("patch_tokens_pos"));

        // cls_token + pos_embed[0], expanded to [N, 1, D]: Shape(start 0, end 1) gives [N].
        string cls = Weight(g, encoder.cls_token.detach().Plus(pos[.., ..1, ..]), "cls_token_plus_pos");
        string n = g.Node("Shape", new[] { y }, g.UniqueName("batch_size"), Attr("start", 0L), Attr("end", 1L));
        string clsShape = g.Node("Concat", new[] { n, g.Int64s("cls_tail_shape", 1, d) }, g.UniqueName("cls_shape"), Attr("axis", 0L));
        string clsTokens = g.Node("Expand", new[] { cls, clsShape }, g.UniqueName("cls_tokens"));
        return g.Node("Concat", new[] { clsTokens, y }, g.UniqueName("tokens"), Attr("axis", 1L));
    }

    static string Blocks(OnnxGraphBuilder g, MaeEncoder encoder, string x) => BlockOutputs(g, encoder, x)[^1];

    /// <summary>The tokens after each block, in order.</summary>
    static List<string> BlockOutputs(OnnxGraphBuilder g, MaeEncoder encoder, string x)
    {
        var cfg = encoder.Config;
        var outputs = new List<string>(cfg.Depth);
        int i = 0;
        foreach (var block in encoder.blocks) outputs.Add(x = Block(g, block, x, cfg, $"blocks.{i++}"));
        return outputs;
    }

    /// <summary>x + attn(norm1(x)), then x + mlp(norm2(x)), as <see cref="Model.Block"/>.</summary>
    static string Block(OnnxGraphBuilder g, Block block, string x, MaeConfig cfg, string prefix)
    {
        long d = cfg.EmbedDim, heads = cfg.NumHeads, hd = d / heads;
        // Attention: qkv → [N, T, 3, H, hd] → [3, N, H, T, hd]
        string h = LayerNorm(g, block.norm1, x, cfg.LayerNormEps, prefix + ".norm1");
        string qkv = Linear(g, block.attn.qkv, h, prefix + ".attn.qkv");
        qkv = g.Node("Reshape", new[] { qkv, g.Int64s(prefix + ".attn.qkv_shape", 0, 0, 3, heads, hd) }, g.UniqueName(prefix + ".attn.qkv_heads"));
        qkv = g.Node("Transpose", new[] { qkv }, g.UniqueName(prefix + ".attn.qkv_t"), Attr("perm", 2L, 0L, 3L, 1L, 4L));
        string Pick(long index, string name) =>
            g.Node("Gather", new[] { qkv, g.AddInt64Initializer($"{prefix}.attn.index{index}", new[] { index }) },
                g.UniqueName($"{prefix}.attn.{name}"), Attr("axis", 0L));
        string q = Pick(0, "q"), k = Pick(1, "k"), v = Pick(2, "v");
        q = g.Node("Mul", new[] { q, g.Scalar(prefix + ".attn.scale", (float)Math.Pow(hd, -0.5)) }, g.UniqueName(prefix + ".attn.q_scaled"));
        string kT = g.Node("Transpose", new[] { k }, g.UniqueName(prefix + ".attn.k_t"), Attr("perm", 0L, 1L, 3L, 2L));
        string scores = g.Node("MatMul", new[] { q, kT }, g.UniqueName(prefix + ".attn.scores"));
        string probs = g.Node("Softmax", new[] { scores }, g.UniqueName(prefix + ".attn.probs"), Attr("axis", -1L));
        string y = g.Node("MatMul", new[] { probs, v }, g.UniqueName(prefix + ".attn.context"));
        y = g.Node("Transpose", new[] { y }, g.UniqueName(prefix + ".attn.context_t"), Attr("perm", 0L, 2L, 1L, 3L));
        y = g.Node("Reshape", new[] { y, g.Int64s(prefix + ".attn.merge_shape", 0, 0, d) }, g.UniqueName(prefix + ".attn.merged"));
        y = Linear(g, block.attn.proj, y, prefix + ".attn.proj");
        x = g.Node("Add", new[] { x, y }, g.UniqueName(prefix + ".attn_residual"));

        return MlpResidual(g, block.norm2, block.mlp, x, cfg.LayerNormEps, prefix);
    }

    /// <summary>x + fc2(GELU(fc1(norm2(x)))): the MLP half of a block (<see cref="Block"/>, the attentive pooler's).</summary>
    static string MlpResidual(OnnxGraphBuilder g, LayerNorm norm2, Mlp mlp, string x, double eps, string prefix, string? output = null)
    {
        string h = LayerNorm(g, norm2, x, eps, prefix + ".norm2");
        h = Linear(g, mlp.fc1, h, prefix + ".mlp.fc1");
        h = Gelu(g, h, prefix + ".mlp.act");
        h = Linear(g, mlp.fc2, h, prefix + ".mlp.fc2");
        return g.Node("Add", new[] { x, h }, output is null ? g.UniqueName(prefix + ".mlp_residual") : g.ExactName(output));
    }

    /// <summary>0.5 · x · (1 + erf(x / √2)), the exact GELU of nn.GELU() (the Gelu op needs opset 20).</summary>
    static string Gelu(OnnxGraphBuilder g, string x, string prefix)
    {
        string scaled = g.Node("Mul", new[] { x, g.Scalar(prefix + ".inv_sqrt2", (float)(1 / Math.Sqrt(2))) }, g.UniqueName(prefix + ".x_over_sqrt2"));
        string erf = g.Node("Erf", new[] { scaled }, g.UniqueName(prefix + ".erf"));
        string onePlus = g.Node("Add", new[] { erf, g.Scalar(prefix + ".one", 1f) }, g.UniqueName(prefix + ".one_plus_erf"));
        string half = g.Node("Mul", new[] { x, g.Scalar(prefix + ".half", 0.5f) }, g.UniqueName(prefix + ".half_x"));
        return g.Node("Mul", new[] { half, onePlus }, g.UniqueName(prefix + ".out"));
    }

    static string LayerNorm(OnnxGraphBuilder g, LayerNorm norm, string x, double eps, string prefix, string? output = null)
        => g.Node("LayerNormalization",
            new[] { x, Weight(g, norm.weight!, prefix + ".weight"), Weight(g, norm.bias!, prefix + ".bias") },
            output is null ? g.UniqueName(prefix) : g.ExactName(output),
            Attr("axis", -1L), Attr("epsilon", (float)eps));

    /// <summary>x · Wᵀ + b; W ([out, in] in TorchSharp) is transposed once here.</summary>
    static string Linear(OnnxGraphBuilder g, Linear linear, string x, string prefix, string? output = null)
    {
        string w = Weight(g, linear.weight!.detach().t(), prefix + ".weight_t");
        string y = g.Node("MatMul", new[] { x, w }, g.UniqueName(prefix + ".matmul"));
        return g.Node("Add", new[] { y, Weight(g, linear.bias!, prefix + ".bias") }, output is null ? g.UniqueName(prefix) : g.ExactName(output));
    }

    /// <summary>Token 0 of [N, T, D]: [N, D].</summary>
    static string ClsToken(OnnxGraphBuilder g, string x, string? output)
        => g.Node("Gather", new[] { x, g.AddInt64Initializer("cls_index", new[] { 0L }) },
                  output is null ? g.UniqueName("cls_out") : g.ExactName(output), Attr("axis", 1L));

    /// <summary>[N, 1 + L, D] → [N, 4·D]: the mean of each quadrant's patch tokens (<see cref="MaeEncoder.QuadrantPatches"/>,
    /// shifted by the cls token), concatenated.</summary>
    static string MeanOfQuadrants(OnnxGraphBuilder g, string x, int grid, string? output)
    {
        var cells = MaeEncoder.QuadrantPatches(grid).Select((cell, i) =>
        {
            string tokens = g.Node("Gather", new[] { x, g.Int64s($"quadrant{i}_tokens", cell.Select(p => p + 1).ToArray()) },
                g.UniqueName($"quadrant{i}_tokens_out"), Attr("axis", 1L));
            return g.Node("ReduceMean", new[] { tokens }, g.UniqueName($"quadrant{i}_mean"), Attr("axes", new[] { 1L }), Attr("keepdims", 0L));
        }).ToArray();
        return g.Node("Concat", cells, output is null ? g.UniqueName("quadrants") : g.ExactName(output), Attr("axis", 1L));
    }

    /// <summary>Mean over tokens 1.. of [N, T, D]: [N, D].</summary>
    static string MeanOfPatches(OnnxGraphBuilder g, string x, string? output)
    {
        string patches = g.Node("Slice",
            new[] { x, g.Int64s("patch_start", 1), g.Int64s("patch_end", long.MaxValue), g.Int64s("patch_axis", 1) },
            g.UniqueName("patch_tokens_out"));
        return g.Node("ReduceMean", new[] { patches }, output is null ? g.UniqueName("patch_mean") : g.ExactName(output),
            Attr("axes", new[] { 1L }), Attr("keepdims", 0L));
    }

    /// <summary>Adds a parameter (any device or dtype) as a float32 row-major initializer.</summary>
    static string Weight(OnnxGraphBuilder g, Tensor t, string name)
    {
        using var scope = NewDisposeScope();
        var c = t.detach().to(float32).cpu().contiguous();
        return g.AddFloatInitializer(name, c.bytes.ToArray(), c.shape);
    }
}
