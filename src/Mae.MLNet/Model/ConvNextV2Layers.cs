using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>timm's <c>LayerNorm2d</c>: LayerNorm over the channels of an [N, C, H, W] map (permute to channels-last,
/// <c>layer_norm</c>, permute back); parameters <c>weight</c>, <c>bias</c> [C].</summary>
internal sealed class LayerNorm2d : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter bias;
    readonly double eps;

    public LayerNorm2d(int channels, double eps) : base(nameof(LayerNorm2d))
    {
        this.eps = eps;
        weight = new Parameter(ones(channels));
        bias = new Parameter(zeros(channels));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), new[] { weight.shape[0] }, weight, bias, eps);
        return y.permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>The same norm on a channels-last [N, H, W, C] tensor (timm's <c>LayerNorm</c> of the tiny and larger
    /// blocks: same parameters, same arithmetic per pixel).</summary>
    public Tensor ForwardChannelsLast(Tensor x) => nn.functional.layer_norm(x, new[] { weight.shape[0] }, weight, bias, eps);
}

/// <summary>Global Response Normalization (ConvNeXt V2, Eq. 1–3; timm's <c>GlobalResponseNorm</c>, channels-last):
/// G = ‖x‖₂ over the spatial positions per channel, N = G / (mean over channels of G + 1e-6), out = x + bias + weight·(x·N).
/// timm's names <c>weight</c>/<c>bias</c> are the official <c>gamma</c>/<c>beta</c>, zero at init (GRN starts as identity).</summary>
internal sealed class GlobalResponseNorm : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter bias;
    const double Eps = 1e-6;

    public GlobalResponseNorm(int dim) : base(nameof(GlobalResponseNorm))
    {
        weight = new Parameter(zeros(dim));
        bias = new Parameter(zeros(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, overBatch: false);

    /// <summary><paramref name="x"/>: [N, H, W, C]. <paramref name="overBatch"/>: G over the pixels of the whole batch
    /// (FCMAE's masked encoder: the official sparse <c>MinkowskiGRN</c> takes the norm over <c>x.F</c>, every visible
    /// pixel of the batch, where the dense layer takes it per image); the masked pixels must then be zero.</summary>
    public Tensor Forward(Tensor x, bool overBatch)
    {
        using var scope = NewDisposeScope();
        // ‖x‖₂ over the pixels as one flattened dimension: linalg.vector_norm(x, 2, dims) would make an unheld Scalar
        // of its order inside TorchSharp (see ScalarMath); norm along one dimension takes the order as a plain float.
        long c = x.shape[3];
        var g = x.reshape(overBatch ? 1 : x.shape[0], -1, c).norm(1, true, 2f).view(-1, 1, 1, c); // [N or 1, 1, 1, C]
        var n = g / g.mean(new long[] { -1 }, keepdim: true).Plus(Eps);
        return x.Plus(addcmul(bias.view(1, 1, 1, -1), weight.view(1, 1, 1, -1), x * n, ScalarMath.One)).MoveToOuterDisposeScope();
    }
}

/// <summary>A pointwise (per-pixel) linear map on channels-last tensors whose weight is stored as timm stores it:
/// <c>[out, in]</c> (<c>nn.Linear</c>) or, for <see cref="ConvNextV2Config.ConvMlp"/>, <c>[out, in, 1, 1]</c> (a 1×1
/// <c>nn.Conv2d</c>). Names <c>weight</c>, <c>bias</c>.</summary>
internal sealed class Pointwise : nn.Module<Tensor, Tensor>
{
    public readonly Parameter weight;
    public readonly Parameter bias;
    readonly long inFeatures, outFeatures;
    public ScalarType? ComputeDType { get; set; }

    public Pointwise(int inFeatures, int outFeatures, bool convShape) : base(nameof(Pointwise))
    {
        this.inFeatures = inFeatures;
        this.outFeatures = outFeatures;
        weight = new Parameter(convShape ? zeros(outFeatures, inFeatures, 1, 1) : zeros(outFeatures, inFeatures));
        bias = new Parameter(zeros(outFeatures));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var w = weight.dim() == 4 ? weight.view(outFeatures, inFeatures) : weight;
        return nn.functional.linear(MixedPrecision.Cast(x, ComputeDType), MixedPrecision.Cast(w, ComputeDType),
            MixedPrecision.Cast(bias, ComputeDType)).MoveToOuterDisposeScope();
    }
}

/// <summary>timm's <c>GlobalResponseNormMlp</c>: fc1 → GELU (exact) → GRN → fc2, on channels-last tensors.</summary>
internal sealed class GrnMlp : nn.Module<Tensor, Tensor>
{
    public readonly Pointwise fc1;
    public readonly GlobalResponseNorm grn;
    public readonly Pointwise fc2;

    public GrnMlp(int dim, int hidden, bool convShape) : base(nameof(GrnMlp))
    {
        fc1 = new Pointwise(dim, hidden, convShape);
        grn = new GlobalResponseNorm(hidden);
        fc2 = new Pointwise(hidden, dim, convShape);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary><paramref name="keep"/>: [N, H, W, 1], 1 where a pixel is visible (FCMAE); the GRN then sees only visible
    /// pixels, of the whole batch, as the official sparse GRN does. <c>null</c>: every pixel, per image.</summary>
    public Tensor Forward(Tensor x, Tensor? keep)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.gelu(fc1.forward(x)).to(float32);
        if (keep is not null) h = h * keep;
        return fc2.forward(grn.Forward(h, overBatch: keep is not null)).MoveToOuterDisposeScope();
    }
}

/// <summary>ConvNeXt V2 block (timm's <c>ConvNeXtBlock</c> with <c>use_grn</c>, no layer scale): depthwise 7×7 conv →
/// LayerNorm → <see cref="GrnMlp"/> → drop path → + input. Names <c>conv_dw</c>, <c>norm</c>, <c>mlp.fc1</c>,
/// <c>mlp.grn</c>, <c>mlp.fc2</c>.</summary>
internal sealed class ConvNextBlock : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d conv_dw;
    public readonly LayerNorm2d norm;
    public readonly GrnMlp mlp;
    public double DropPathRate { get; set; }
    public ScalarType? ComputeDType
    {
        get => mlp.fc1.ComputeDType;
        set { mlp.fc1.ComputeDType = value; mlp.fc2.ComputeDType = value; computeDType = value; }
    }
    ScalarType? computeDType;

    public ConvNextBlock(int dim, int mlpRatio, bool convMlp, double eps) : base(nameof(ConvNextBlock))
    {
        conv_dw = nn.Conv2d(dim, dim, kernel_size: 7, padding: 3, groups: dim, bias: true);
        norm = new LayerNorm2d(dim, eps);
        mlp = new GrnMlp(dim, mlpRatio * dim, convMlp);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary><paramref name="x"/>: [N, C, H, W]. <paramref name="keep"/>: FCMAE's [N, 1, H, W] visibility (1 visible);
    /// the input must already be zero where it is 0, and the output is zeroed there again — the dense emulation of the
    /// official sparse block, whose convolution, GRN and residual see only visible pixels.</summary>
    public Tensor Forward(Tensor x, Tensor? keep)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.conv2d(MixedPrecision.Cast(x, computeDType), MixedPrecision.Cast(conv_dw.weight!, computeDType),
            MixedPrecision.Cast(conv_dw.bias!, computeDType), padding: new long[] { 3, 3 }, groups: conv_dw.weight!.shape[0]);
        var h = norm.ForwardChannelsLast(y.permute(0, 2, 3, 1).to(float32));
        h = mlp.Forward(h, keep?.permute(0, 2, 3, 1)).permute(0, 3, 1, 2);
        if (training && DropPathRate > 0) h = Model.DropPath.Apply(h, DropPathRate, training: true);
        var output = x.Plus(h);
        if (keep is not null) output = output * keep;
        return output.MoveToOuterDisposeScope();
    }
}
