using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Attentive pooling of a token sequence into one vector, the "attentive probe" of masked-image models (as the
/// attentive pooler of V-JEPA / data2vec 2.0 / AIM, with one query): the tokens are layer-normalised (<c>norm</c>),
/// one learned <c>query_token</c> attends to them with <c>numHeads</c> heads (<c>q</c> from the query, fused
/// <c>kv</c> from the tokens, scale 1/√head-dim, softmax over the tokens), the heads are merged by <c>proj</c> and
/// added to the query (the residual of a cross-attention block):
/// <c>out = query + proj(softmax(q·kᵀ/√d)·v)</c>, q = query·Wq + bq, [k v] = norm(x)·Wkv + bkv.
/// Unlike mean or cls pooling the weighting of the patches is learned, which is why MAE features, spread over the
/// patch tokens, probe much better this way than linearly (see docs/results.md).
/// </summary>
public sealed class AttentivePooler : nn.Module<Tensor, Tensor>
{
    public int EmbedDim { get; }
    public int NumHeads { get; }
    public double LayerNormEps { get; }
    /// <summary>[1, 1, D]: the learned query (trunc-normal std 0.02, as V-JEPA's <c>query_tokens</c>).</summary>
    public readonly Parameter query_token;
    /// <summary>LayerNorm over the tokens' channels.</summary>
    public readonly LayerNorm norm;
    public readonly Linear q;
    /// <summary>Keys and values from the normalised tokens: [D] → [2D], keys first.</summary>
    public readonly Linear kv;
    public readonly Linear proj;

    public AttentivePooler(int embedDim, int numHeads, double layerNormEps = 1e-6) : base(TorchBackend.Checked(nameof(AttentivePooler)))
    {
        if (embedDim < 1) throw new ArgumentOutOfRangeException(nameof(embedDim), embedDim, "The token width must be at least 1.");
        if (numHeads < 1 || embedDim % numHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, $"The number of heads must be ≥ 1 and divide the token width {embedDim}.");
        if (!(layerNormEps > 0)) throw new ArgumentOutOfRangeException(nameof(layerNormEps), layerNormEps, "The LayerNorm epsilon must be > 0.");
        EmbedDim = embedDim;
        NumHeads = numHeads;
        LayerNormEps = layerNormEps;
        query_token = new Parameter(zeros(1, 1, embedDim));
        norm = nn.LayerNorm(embedDim, layerNormEps);
        q = nn.Linear(embedDim, embedDim, hasBias: true);
        kv = nn.Linear(embedDim, 2 * embedDim, hasBias: true);
        proj = nn.Linear(embedDim, embedDim, hasBias: true);
        RegisterComponents();
        using var noGrad = no_grad();
        // V-JEPA's pooler: trunc_normal(std 0.02) for the query and every Linear weight, zero biases.
        VitClassifier.TruncNormal(query_token, std: 0.02);
        foreach (var linear in new[] { q, kv, proj })
        {
            VitClassifier.TruncNormal(linear.weight!, std: 0.02);
            nn.init.zeros_(linear.bias!);
        }
    }

    /// <summary>[N, T, D] tokens → [N, D].</summary>
    public override Tensor forward(Tensor tokens)
    {
        if (tokens.dim() != 3 || tokens.shape[2] != EmbedDim || tokens.shape[1] < 1)
            throw new ArgumentException($"Expected tokens [N, T ≥ 1, {EmbedDim}]; got [{string.Join(", ", tokens.shape)}].", nameof(tokens));
        using var scope = NewDisposeScope();
        long n = tokens.shape[0], t = tokens.shape[1], hd = EmbedDim / NumHeads;
        var x = norm.forward(tokens.to(float32));
        var query = query_token.expand(n, -1, -1);                                                  // [N, 1, D]
        var qh = q.forward(query).reshape(n, 1, NumHeads, hd).transpose(1, 2);                     // [N, H, 1, hd]
        var kvh = kv.forward(x).reshape(n, t, 2, NumHeads, hd).permute(2, 0, 3, 1, 4);              // [2, N, H, T, hd]
        var attn = qh.Times(Math.Pow(hd, -0.5)).matmul(kvh[0].transpose(-2, -1)).softmax(-1);       // [N, H, 1, T]
        var y = attn.matmul(kvh[1]).transpose(1, 2).reshape(n, EmbedDim);                           // [N, D]
        return query.reshape(n, EmbedDim).Plus(proj.forward(y)).MoveToOuterDisposeScope();
    }

    /// <summary>Blocks behind tokens of width <paramref name="tokenWidth"/> of an encoder with <paramref name="config"/>.</summary>
    internal static int LayersOf(MaeConfig config, int tokenWidth, string paramName)
    {
        int d = config.EmbedDim, layers = tokenWidth / d;
        if (tokenWidth % d != 0 || layers < 1 || layers > config.Depth)
            throw new ArgumentException(
                $"The attentive probe reads tokens of width {tokenWidth}; an encoder of width {d} and depth {config.Depth} gives 1 … {config.Depth} × {d}.",
                paramName);
        return layers;
    }
}
