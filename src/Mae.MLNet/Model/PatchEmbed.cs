using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>timm's <c>PatchEmbed</c>: a p×p convolution with stride p, flattened to [N, L, D] tokens.</summary>
public sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    public readonly Conv2d proj;

    public PatchEmbed(int patchSize, int inChannels, int embedDim) : base(nameof(PatchEmbed))
    {
        proj = nn.Conv2d(inChannels, embedDim, kernel_size: patchSize, stride: patchSize, bias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor images)
    {
        using var y = proj.forward(images);
        using var flat = y.flatten(2);
        return flat.transpose(1, 2);
    }
}
