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
/// <c>p = query + proj(softmax(q·kᵀ/√d)·v)</c>, q = query·Wq + bq, [k v] = norm(x)·Wkv + bkv.
/// With <see cref="MlpRatio"/> &gt; 0 the block is complete, as V-JEPA's default pooler (<c>CrossAttentionBlock</c>):
/// <c>out = p + mlp(norm2(p))</c>, mlp = fc1 → GELU → fc2 with <c>MlpRatio × D</c> hidden units; with 0 (the default,
/// AIM's pooler) <c>out = p</c>. Unlike mean or cls pooling the weighting of the patches is learned, which is why MAE
/// features, spread over the patch tokens, probe much better this way than linearly (see docs/results.md).
/// </summary>
public sealed class AttentivePooler : nn.Module<Tensor, Tensor>
{
    public int EmbedDim { get; }
    public int NumHeads { get; }
    public double LayerNormEps { get; }
    /// <summary>Hidden units of the MLP per token channel; 0: no MLP (attention and its residual only).</summary>
    public double MlpRatio { get; }
    /// <summary>[1, 1, D]: the learned query (trunc-normal std 0.02, as V-JEPA's <c>query_tokens</c>).</summary>
    public readonly Parameter query_token;
    /// <summary>LayerNorm over the tokens' channels.</summary>
    public readonly LayerNorm norm;
    public readonly Linear q;
    /// <summary>Keys and values from the normalised tokens: [D] → [2D], keys first.</summary>
    public readonly Linear kv;
    public readonly Linear proj;
    /// <summary>The MLP's LayerNorm (null without an MLP).</summary>
    internal readonly LayerNorm? norm2;
    /// <summary>fc1 → GELU → fc2 after the attention (null without an MLP).</summary>
    internal readonly Mlp? mlp;

    /// <summary>The attention-only pooler (<see cref="MlpRatio"/> 0); kept for binary compatibility.</summary>
    public AttentivePooler(int embedDim, int numHeads, double layerNormEps) : this(embedDim, numHeads, layerNormEps, mlpRatio: 0) { }

    /// <summary>With <paramref name="mlpRatio"/> &gt; 0, the complete cross-attention block (V-JEPA's default: 4).</summary>
    public AttentivePooler(int embedDim, int numHeads, double layerNormEps = 1e-6, double mlpRatio = 0) : base(TorchBackend.Checked(nameof(AttentivePooler)))
    {
        if (embedDim < 1) throw new ArgumentOutOfRangeException(nameof(embedDim), embedDim, "The token width must be at least 1.");
        if (numHeads < 1 || embedDim % numHeads != 0)
            throw new ArgumentOutOfRangeException(nameof(numHeads), numHeads, $"The number of heads must be ≥ 1 and divide the token width {embedDim}.");
        if (!(layerNormEps > 0)) throw new ArgumentOutOfRangeException(nameof(layerNormEps), layerNormEps, "The LayerNorm epsilon must be > 0.");
        int hidden = CheckMlpRatio(mlpRatio, embedDim, nameof(mlpRatio));
        EmbedDim = embedDim;
        NumHeads = numHeads;
        LayerNormEps = layerNormEps;
        MlpRatio = mlpRatio;
        query_token = new Parameter(zeros(1, 1, embedDim));
        norm = nn.LayerNorm(embedDim, layerNormEps);
        q = nn.Linear(embedDim, embedDim, hasBias: true);
        kv = nn.Linear(embedDim, 2 * embedDim, hasBias: true);
        proj = nn.Linear(embedDim, embedDim, hasBias: true);
        if (hidden > 0)
        {
            norm2 = nn.LayerNorm(embedDim, layerNormEps);
            mlp = new Mlp(embedDim, hidden);
        }
        RegisterComponents();
        using var noGrad = no_grad();
        // V-JEPA's pooler: trunc_normal(std 0.02) for the query and every Linear weight, zero biases.
        VitClassifier.TruncNormal(query_token, std: 0.02);
        foreach (var linear in mlp is null ? new[] { q, kv, proj } : new[] { q, kv, proj, mlp.fc1, mlp.fc2 })
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
        var pooled = query.reshape(n, EmbedDim).Plus(proj.forward(y));                               // [N, D]
        if (mlp is not null) pooled = pooled.Plus(mlp.forward(norm2!.forward(pooled)));
        return pooled.MoveToOuterDisposeScope();
    }

    /// <summary>The MLP's hidden width for <paramref name="mlpRatio"/> (0: none); throws naming the setting when the
    /// ratio is negative, not finite, or gives less than one hidden unit.</summary>
    internal static int CheckMlpRatio(double mlpRatio, int embedDim, string paramName)
    {
        if (!double.IsFinite(mlpRatio) || mlpRatio < 0)
            throw new ArgumentOutOfRangeException(paramName, mlpRatio, "The pooler's MLP ratio must be 0 (no MLP) or a positive finite number.");
        int hidden = (int)(embedDim * mlpRatio);
        if (mlpRatio > 0 && hidden < 1)
            throw new ArgumentOutOfRangeException(paramName, mlpRatio, $"An MLP ratio of {mlpRatio} gives no hidden unit at token width {embedDim}.");
        return hidden;
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
