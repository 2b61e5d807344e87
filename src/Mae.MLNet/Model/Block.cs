using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>Pre-norm transformer block, timm's <c>Block</c>: x + drop_path(attn(norm1(x))), then
/// x + drop_path(mlp(norm2(x))); drop path (<see cref="DropPathRate"/>) acts only in training mode and is off by default.
/// With a <see cref="ComputeDType"/>, attn and mlp compute in it while the norms and the residual stream stay fp32
/// (the residual add promotes the reduced-precision branch back to the stream's dtype).</summary>
internal sealed class Block : nn.Module<Tensor, Tensor>
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

    /// <summary>Stochastic depth of this block's two residual branches (timm's <c>drop_path</c>; see
    /// <see cref="DropPath"/>): the probability of dropping a sample's branch in training mode, in [0, 1). Default 0.</summary>
    public double DropPathRate
    {
        get => dropPathRate;
        set { Model.DropPath.CheckRate(value, nameof(DropPathRate)); dropPathRate = value; }
    }
    double dropPathRate;

    public Block(int dim, int numHeads, int mlpHidden, double eps, double dropPathRate = 0) : base(nameof(Block))
    {
        DropPathRate = dropPathRate;
        norm1 = nn.LayerNorm(dim, eps);
        attn = new Attention(dim, numHeads);
        norm2 = nn.LayerNorm(dim, eps);
        mlp = new Mlp(dim, mlpHidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        Tensor y;
        using (NewDisposeScope())
        {
            var h = x.Plus(Branch(attn.forward(norm1.forward(x))));
            y = h.Plus(Branch(mlp.forward(norm2.forward(h)))).MoveToOuterDisposeScope();
        }
        return BackwardCuts.After(this, y);   // the output itself, or a leaf standing for it (overlapped all-reduce)
    }

    /// <summary>A residual branch through drop path; the attn branch's mask is drawn before the mlp branch's, as timm.</summary>
    Tensor Branch(Tensor y) => training && dropPathRate > 0 ? Model.DropPath.Apply(y, dropPathRate, training: true) : y;
}
