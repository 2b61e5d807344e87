using System.Globalization;
using Mae.MLNet.Model;
using Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static Mae.MLNet.Interop.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop.Onnx;

public static partial class MaeOnnxExport
{
    /// <summary>
    /// Builds a ConvNeXt V2 graph (opset 17, the ops ONNX Runtime runs): pixels → stem → stages → global average pooling
    /// → <c>head.norm</c> = the features (<see cref="ConvNextV2.ForwardFeatures(Tensor)"/>); with a head (<see cref="ConvNextV2.NumClasses"/>
    /// &gt; 0) also the logits and, unless disabled, their softmax. LayerNorm over channels is Transpose → LayerNormalization
    /// → Transpose; GRN is ReduceL2 over the pixels, its mean over channels, Mul / Add; GELU is the exact erf form.
    /// <see cref="MaeOnnxOptions.Layers"/> &gt; 1 (featurizer only): the pooled features of the last n stages concatenated
    /// (<see cref="ConvNextV2.ForwardFeatures(Tensor, int)"/>). <see cref="MaeOnnxOptions.Pooling"/> does not apply.
    /// </summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static ModelProto BuildModel(ConvNextV2 model, MaeOnnxOptions? options = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.head is null)
            throw new ArgumentException("This ConvNeXt V2 is an FCMAE encoder without head norm; export Fcmae.ToEncoder() instead.", nameof(model));
        options ??= new MaeOnnxOptions();
        var cfg = model.Config;
        bool classifier = model.NumClasses > 0;
        options.Validate(cfg.InputGeometry, classifier, checkLayers: false);
        ConvNextV2.CheckStages(options.Layers, nameof(options.Layers));
        if (classifier && options.Layers != 1)
            throw new ArgumentException($"A ConvNeXt V2 classifier's features are its last stage's (Layers 1); got Layers = {options.Layers}.", nameof(options));
        CheckSize(model.parameters(), "ConvNeXt V2");

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = new OnnxGraphBuilder("convnextv2");
        double eps = cfg.LayerNormEps;
        string x = Conv(g, model.stemLayers.Conv, Input(g, cfg.InputGeometry, options), "stem.0", cfg.StemPatchSize, cfg.StemPatchSize, 0, 1);
        x = LayerNorm2d(g, model.stemLayers.Norm, x, eps, "stem.1");
        var maps = new List<string>(4);
        for (int i = 0; i < 4; i++)
        {
            var stage = model.stages[i];
            string prefix = $"stages.{i}";
            if (stage.down is var (norm, conv))
                x = Conv(g, conv, LayerNorm2d(g, norm, x, eps, prefix + ".downsample.0"), prefix + ".downsample.1", 2, 2, 0, 1);
            int j = 0;
            foreach (var block in stage.blocks) x = ConvNextBlock(g, block, x, eps, $"{prefix}.blocks.{j++}");
            maps.Add(x);
        }

        string Name(string name) => options.PerRow ? name + "_batch" : name;
        string Pooled(string map, string prefix) => g.Node("ReduceMean", new[] { map }, g.UniqueName(prefix + ".pooled"), Attr("axes", 2L, 3L), Attr("keepdims", 0L));
        string features;
        int width = cfg.NumFeatures;
        if (options.Layers == 1)
            features = LayerNormalization(g, Pooled(maps[3], "head"), model.head.norm.weight, model.head.norm.bias, eps, "head.norm", Name(options.FeaturesName));
        else
        {
            // Earlier stages: pooled, then a LayerNorm without affine parameters (no trained norm exists there).
            var parts = new List<string>();
            for (int i = 4 - options.Layers; i < 3; i++)
            {
                var ones = torch.ones(cfg.Dims[i]);
                var zeros = torch.zeros(cfg.Dims[i]);
                parts.Add(LayerNormalization(g, Pooled(maps[i], $"stages.{i}"), ones, zeros, eps, $"stages.{i}.pooled_norm"));
            }
            parts.Add(LayerNormalization(g, Pooled(maps[3], "head"), model.head.norm.weight, model.head.norm.bias, eps, "head.norm"));
            features = g.Node("Concat", parts.ToArray(), g.ExactName(Name(options.FeaturesName)), Attr("axis", 1L));
            width = cfg.FeatureWidth(options.Layers);
        }
        Output(g, options, features, options.FeaturesName, width);
        if (classifier)
        {
            string logits = Linear(g, model.head.fc!, features, "head.fc", Name(options.LogitsName));
            Output(g, options, logits, options.LogitsName, model.NumClasses);
            if (options.ProbabilitiesName is not null)
            {
                string probabilities = g.Node("Softmax", new[] { logits }, g.ExactName(Name(options.ProbabilitiesName)), Attr("axis", -1L));
                Output(g, options, probabilities, options.ProbabilitiesName, model.NumClasses);
            }
        }
        var meta = new List<(string, string)>
        {
            ("mae.architecture", "convnextv2"),
            ("mae.image_size", cfg.ImageSize.ToString(CultureInfo.InvariantCulture)),
            ("mae.in_channels", cfg.InChannels.ToString(CultureInfo.InvariantCulture)),
            ("mae.depths", string.Join(",", cfg.Depths)),
            ("mae.dims", string.Join(",", cfg.Dims)),
            ("mae.layers", options.Layers.ToString(CultureInfo.InvariantCulture)),
            ("mae.num_classes", model.NumClasses.ToString(CultureInfo.InvariantCulture)),
            ("mae.input_layout", options.InputLayout == MaeOnnxOptions.Layout.FlatChw ? "flat_chw" : "nchw"),
        };
        return WithMetadata(g, classifier ? $"ConvNeXt V2 classifier, {model.NumClasses} classes" : $"ConvNeXt V2 featurizer, pooled features of the last {options.Layers} stage(s)", meta);
    }

    /// <summary>Writes the ConvNeXt V2 graph to <paramref name="stream"/> (left open).</summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static void Export(ConvNextV2 model, Stream stream, MaeOnnxOptions? options = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(stream);
        Write(BuildModel(model, options), stream);
    }

    /// <summary>Writes the ConvNeXt V2 graph to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    // RS0026: these overloads differ in their first parameter's type (the model), so their optional parameters
    // cannot make a call ambiguous.
#pragma warning disable RS0026
    public static void Export(ConvNextV2 model, string path, MaeOnnxOptions? options = null)
#pragma warning restore RS0026
    {
        CheckPath(path);
        var built = BuildModel(model, options);
        Runtime.AtomicFile.Write(path, s => Write(built, s));
    }

    /// <summary>depthwise 7×7 conv → LayerNorm (channels last) → fc1 → GELU → GRN → fc2 → + input, as <see cref="Model.ConvNextBlock"/>.</summary>
    static string ConvNextBlock(OnnxGraphBuilder g, ConvNextBlock block, string x, double eps, string prefix)
    {
        long dim = block.conv_dw.weight!.shape[0];
        string y = Conv(g, block.conv_dw, x, prefix + ".conv_dw", 7, 1, 3, dim);
        y = g.Node("Transpose", new[] { y }, g.UniqueName(prefix + ".nhwc"), Attr("perm", 0L, 2L, 3L, 1L));
        y = LayerNormalization(g, y, block.norm.weight, block.norm.bias, eps, prefix + ".norm");
        y = Pointwise(g, block.mlp.fc1, y, prefix + ".mlp.fc1");
        y = Gelu(g, y, prefix + ".mlp.act");
        y = Grn(g, block.mlp.grn, y, prefix + ".mlp.grn");
        y = Pointwise(g, block.mlp.fc2, y, prefix + ".mlp.fc2");
        y = g.Node("Transpose", new[] { y }, g.UniqueName(prefix + ".nchw"), Attr("perm", 0L, 3L, 1L, 2L));
        return g.Node("Add", new[] { x, y }, g.UniqueName(prefix + ".residual"));
    }

    /// <summary>GRN on [N, H, W, C]: G = ‖x‖₂ over H, W; N = G / (mean over C of G + 1e-6); x + (weight·(x·N) + bias).</summary>
    static string Grn(OnnxGraphBuilder g, GlobalResponseNorm grn, string x, string prefix)
    {
        string gx = g.Node("ReduceL2", new[] { x }, g.UniqueName(prefix + ".gx"), Attr("axes", 1L, 2L), Attr("keepdims", 1L));
        string mean = g.Node("ReduceMean", new[] { gx }, g.UniqueName(prefix + ".gx_mean"), Attr("axes", new[] { -1L }), Attr("keepdims", 1L));
        mean = g.Node("Add", new[] { mean, g.Scalar(prefix + ".eps", 1e-6f) }, g.UniqueName(prefix + ".gx_mean_eps"));
        string nx = g.Node("Div", new[] { gx, mean }, g.UniqueName(prefix + ".nx"));
        string y = g.Node("Mul", new[] { x, nx }, g.UniqueName(prefix + ".x_nx"));
        y = g.Node("Mul", new[] { y, Weight(g, grn.weight, prefix + ".weight") }, g.UniqueName(prefix + ".scaled"));
        y = g.Node("Add", new[] { y, Weight(g, grn.bias, prefix + ".bias") }, g.UniqueName(prefix + ".shifted"));
        return g.Node("Add", new[] { x, y }, g.UniqueName(prefix + ".out"));
    }

    /// <summary>A per-pixel linear map on channels-last values; the weight ([out, in] or [out, in, 1, 1]) is transposed once here.</summary>
    static string Pointwise(OnnxGraphBuilder g, Pointwise layer, string x, string prefix)
    {
        var w = layer.weight.detach();
        string wt = Weight(g, w.reshape(w.shape[0], w.shape[1]).t(), prefix + ".weight_t");
        string y = g.Node("MatMul", new[] { x, wt }, g.UniqueName(prefix + ".matmul"));
        return g.Node("Add", new[] { y, Weight(g, layer.bias, prefix + ".bias") }, g.UniqueName(prefix));
    }

    /// <summary>timm's LayerNorm2d on [N, C, H, W]: to channels last, LayerNormalization, back.</summary>
    static string LayerNorm2d(OnnxGraphBuilder g, LayerNorm2d norm, string x, double eps, string prefix)
    {
        string y = g.Node("Transpose", new[] { x }, g.UniqueName(prefix + ".nhwc"), Attr("perm", 0L, 2L, 3L, 1L));
        y = LayerNormalization(g, y, norm.weight, norm.bias, eps, prefix);
        return g.Node("Transpose", new[] { y }, g.UniqueName(prefix + ".nchw"), Attr("perm", 0L, 3L, 1L, 2L));
    }

    static string LayerNormalization(OnnxGraphBuilder g, string x, Tensor weight, Tensor bias, double eps, string prefix, string? output = null)
        => g.Node("LayerNormalization", new[] { x, Weight(g, weight, prefix + ".weight"), Weight(g, bias, prefix + ".bias") },
            output is null ? g.UniqueName(prefix) : g.ExactName(output), Attr("axis", -1L), Attr("epsilon", (float)eps));

    static string Conv(OnnxGraphBuilder g, Conv2d conv, string x, string prefix, long kernel, long stride, long pad, long groups)
        => g.Node("Conv", new[] { x, Weight(g, conv.weight!, prefix + ".weight"), Weight(g, conv.bias!, prefix + ".bias") }, g.UniqueName(prefix),
            Attr("kernel_shape", kernel, kernel), Attr("strides", stride, stride), Attr("pads", pad, pad, pad, pad), Attr("group", groups));
}
