using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>Pre-norm transformer block, timm's <c>Block</c>: x + attn(norm1(x)), then x + mlp(norm2(x)).
/// With a <see cref="ComputeDType"/>, attn and mlp compute in it while the norms and the residual stream stay fp32
/// (the residual add promotes the reduced-precision branch back to the stream's dtype).</summary>
public sealed class Block : nn.Module<Tensor, Tensor>
{
    public readonly LayerNorm norm1;
    public readonly Attention attn;
    public readonly LayerNorm norm2;
    public readonly Mlp mlp;

    /// <summary>Dtype of the matrix work in attn and mlp; <c>null</c> = plain fp32.</summary>
    public ScalarType? ComputeDType
    {
        get => attn.ComputeDType;
        set { attn.ComputeDType = value; mlp.ComputeDType = value; }
    }

    public Block(int dim, int numHeads, int mlpHidden, double eps) : base(nameof(Block))
    {
        norm1 = nn.LayerNorm(dim, eps);
        attn = new Attention(dim, numHeads);
        norm2 = nn.LayerNorm(dim, eps);
        mlp = new Mlp(dim, mlpHidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(attn.forward(norm1.forward(x)));
        return h.Plus(mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}
