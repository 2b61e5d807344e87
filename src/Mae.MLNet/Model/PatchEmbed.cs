using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>timm's <c>PatchEmbed</c>: a p×p convolution with stride p, flattened to [N, L, D] tokens. With a
/// <see cref="ComputeDType"/> the convolution runs in it and the tokens come out in it.</summary>
internal sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d proj;
    readonly int patchSize;

    /// <summary>Dtype of the convolution; <c>null</c> = plain fp32. Set it through the model.</summary>
    public ScalarType? ComputeDType { get => computeDType; set => computeDType = MixedPrecision.Validate(value); }
    ScalarType? computeDType;

    public PatchEmbed(int patchSize, int inChannels, int embedDim) : base(nameof(PatchEmbed))
    {
        this.patchSize = patchSize;
        proj = nn.Conv2d(inChannels, embedDim, kernel_size: patchSize, stride: patchSize, bias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var y = MixedPrecision.Conv2d(proj, images, patchSize, computeDType);
        using var flat = y.flatten(2);
        return flat.transpose(1, 2);
    }
}
