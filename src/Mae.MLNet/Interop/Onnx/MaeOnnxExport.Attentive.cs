using System.Globalization;
using Mae.MLNet.Model;
using Onnx;
using static Mae.MLNet.Interop.Onnx.OnnxGraphBuilder;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop.Onnx;

public static partial class MaeOnnxExport
{
    /// <summary>Builds the attentive-probe feature graph: pixels → the encoder's patch tokens after its final norm
    /// (cls left out) of as many last blocks as the pooler reads, concatenated per patch
    /// (<see cref="MaeEncoder.PatchTokens"/>) → <see cref="AttentivePooler"/> → <see cref="MaeOnnxOptions.FeaturesName"/>
    /// [batch, pooler width] (the input of the probe's linear head). <see cref="MaeOnnxOptions.Pooling"/> and
    /// <see cref="MaeOnnxOptions.Layers"/> do not apply: the pooler's width says how many blocks it reads.</summary>
    public static ModelProto BuildModel(MaeEncoder encoder, AttentivePooler pooler, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(pooler);
        options ??= new MaeOnnxOptions();
        var cfg = encoder.Config;
        options.Validate(cfg);
        int layers = AttentivePooler.LayersOf(cfg, pooler.EmbedDim, nameof(pooler));
        CheckSize(encoder.parameters().Concat(pooler.parameters()), "encoder and pooler");

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = new OnnxGraphBuilder("mae_attentive_probe");
        var blockOutputs = BlockOutputs(g, encoder, Tokens(g, encoder, Input(g, cfg, options)));
        var patchTokens = blockOutputs.Skip(blockOutputs.Count - layers).Select(block =>
        {
            string tokens = LayerNorm(g, encoder.norm, block, cfg.LayerNormEps, "norm");
            return g.Node("Slice",
                new[] { tokens, g.Int64s("patch_start", 1), g.Int64s("patch_end", long.MaxValue), g.Int64s("patch_axis", 1) },
                g.UniqueName("patch_tokens_out"));
        }).ToArray();
        string patches = layers == 1 ? patchTokens[0] : g.Node("Concat", patchTokens, g.UniqueName("patch_tokens_concat"), Attr("axis", 2L));
        string pooled = AttentivePool(g, pooler, patches, options.PerRow ? options.FeaturesName + "_batch" : options.FeaturesName);
        Output(g, options, pooled, options.FeaturesName, pooler.EmbedDim);
        return Model(g, cfg, options, $"MAE encoder + attentive pooler ({pooler.NumHeads} heads" + (layers > 1 ? $", last {layers} blocks" : "") +
            (pooler.mlp is null ? "" : $", MLP ×{pooler.MlpRatio.ToString(CultureInfo.InvariantCulture)}") + ")",
            ("mae.pooling", "attentive"),
            ("mae.pooler_heads", pooler.NumHeads.ToString(CultureInfo.InvariantCulture)),
            ("mae.pooler_mlp_ratio", pooler.MlpRatio.ToString(CultureInfo.InvariantCulture)),
            ("mae.layers", layers.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>Writes the attentive-probe feature graph to <paramref name="stream"/> (left open).</summary>
    public static void Export(MaeEncoder encoder, AttentivePooler pooler, Stream stream, MaeOnnxOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Write(BuildModel(encoder, pooler, options), stream);
    }

    /// <summary>query + proj(softmax(q·kᵀ/√d)·v) over [N, L, D] tokens, then the MLP's residual when the pooler has
    /// one, as <see cref="AttentivePooler.forward"/>: [N, D].</summary>
    static string AttentivePool(OnnxGraphBuilder g, AttentivePooler pooler, string tokens, string output)
    {
        long d = pooler.EmbedDim, heads = pooler.NumHeads, hd = d / heads;
        const string p = "pooler";
        string x = LayerNorm(g, pooler.norm, tokens, pooler.LayerNormEps, p + ".norm");
        // Keys and values: [N, L, 2D] → [N, L, 2, H, hd] → [2, N, H, L, hd]
        string kv = Linear(g, pooler.kv, x, p + ".kv");
        kv = g.Node("Reshape", new[] { kv, g.Int64s(p + ".kv_shape", 0, 0, 2, heads, hd) }, g.UniqueName(p + ".kv_heads"));
        kv = g.Node("Transpose", new[] { kv }, g.UniqueName(p + ".kv_t"), Attr("perm", 2L, 0L, 3L, 1L, 4L));
        string Pick(long index, string name) =>
            g.Node("Gather", new[] { kv, g.AddInt64Initializer($"{p}.index{index}", new[] { index }) }, g.UniqueName($"{p}.{name}"), Attr("axis", 0L));
        string k = Pick(0, "k"), v = Pick(1, "v");
        // The query does not depend on the input: q(query) is computed in the graph from the same weights, [1, H, 1, hd].
        string query = Weight(g, pooler.query_token.detach(), p + ".query_token");                        // [1, 1, D]
        string q = Linear(g, pooler.q, query, p + ".q");
        q = g.Node("Reshape", new[] { q, g.Int64s(p + ".q_shape", 1, 1, heads, hd) }, g.UniqueName(p + ".q_heads"));
        q = g.Node("Transpose", new[] { q }, g.UniqueName(p + ".q_t"), Attr("perm", 0L, 2L, 1L, 3L));
        q = g.Node("Mul", new[] { q, g.Scalar(p + ".scale", (float)Math.Pow(hd, -0.5)) }, g.UniqueName(p + ".q_scaled"));
        string kT = g.Node("Transpose", new[] { k }, g.UniqueName(p + ".k_t"), Attr("perm", 0L, 1L, 3L, 2L));
        string scores = g.Node("MatMul", new[] { q, kT }, g.UniqueName(p + ".scores"));                   // [N, H, 1, L]
        string probs = g.Node("Softmax", new[] { scores }, g.UniqueName(p + ".probs"), Attr("axis", -1L));
        string y = g.Node("MatMul", new[] { probs, v }, g.UniqueName(p + ".context"));                    // [N, H, 1, hd]
        y = g.Node("Transpose", new[] { y }, g.UniqueName(p + ".context_t"), Attr("perm", 0L, 2L, 1L, 3L));
        y = g.Node("Reshape", new[] { y, g.Int64s(p + ".merge_shape", 0, d) }, g.UniqueName(p + ".merged"));  // [N, D]
        y = Linear(g, pooler.proj, y, p + ".proj");
        string queryRow = g.Node("Reshape", new[] { query, g.Int64s(p + ".query_row_shape", 1, d) }, g.UniqueName(p + ".query_row"));
        if (pooler.mlp is null) return g.Node("Add", new[] { queryRow, y }, g.ExactName(output));
        string pooled = g.Node("Add", new[] { queryRow, y }, g.UniqueName(p + ".attn_residual"));
        return MlpResidual(g, pooler.norm2!, pooler.mlp, pooled, pooler.LayerNormEps, p, output);
    }
}
