using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Multi-head self-attention as timm's <c>Attention</c>: one fused <c>qkv</c> Linear with bias, softmax(q·kᵀ/√d)·v,
/// output projection <c>proj</c>. Written as explicit matmul-softmax-matmul, which measured faster on the CPU and for
/// fp32 on CUDA; with a bf16/fp16 <see cref="ComputeDType"/> on CUDA, libtorch's fused scaled_dot_product_attention
/// (flash attention) instead, unless <see cref="FusedOnCuda"/> is off (measurements: docs/benchmarks.md).
/// With a <see cref="ComputeDType"/> the Linear layers and both matmuls run in that dtype, the softmax in fp32
/// (see <see cref="MixedPrecision"/>); the output is in the compute dtype.
/// </summary>
internal sealed class Attention : nn.Module<Tensor, Tensor>
{
    readonly int numHeads;
    readonly double scale;
    public readonly Linear qkv;
    public readonly Linear proj;

    /// <summary>Dtype of the matrix work; <c>null</c> = plain fp32. Set it through the model.</summary>
    public ScalarType? ComputeDType { get => computeDType; set => computeDType = MixedPrecision.Validate(value); }
    ScalarType? computeDType;

    /// <summary>Mixed-precision attention on CUDA through the fused kernel (default true); false gives the explicit
    /// form everywhere. The same function up to rounding. Set it through the model
    /// (<see cref="MaeEncoder.FusedAttentionOnCuda"/>, <see cref="MaskedAutoencoder.FusedAttentionOnCuda"/>).</summary>
    public bool FusedOnCuda { get; set; } = true;

    public Attention(int dim, int numHeads) : base(nameof(Attention))
    {
        this.numHeads = numHeads;
        scale = Math.Pow(dim / numHeads, -0.5);
        qkv = nn.Linear(dim, dim * 3, hasBias: true);
        proj = nn.Linear(dim, dim, hasBias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var qkvOut = MixedPrecision.Linear(qkv, x, computeDType).reshape(b, n, 3, numHeads, c / numHeads).permute(2, 0, 3, 1, 4);
        Tensor y;
        if (computeDType is not null && x.device_type == DeviceType.CUDA && FusedOnCuda)
            y = nn.functional.scaled_dot_product_attention(qkvOut[0], qkvOut[1], qkvOut[2]); // scale 1/√(head dim), as ours
        else
        {
            var q = qkvOut[0].Times(scale);
            var attn = MixedPrecision.Softmax(q.matmul(qkvOut[1].transpose(-2, -1)));
            y = attn.matmul(qkvOut[2]);
        }
        y = y.transpose(1, 2).reshape(b, n, c);
        return MixedPrecision.Linear(proj, y, computeDType).MoveToOuterDisposeScope();
    }
}
