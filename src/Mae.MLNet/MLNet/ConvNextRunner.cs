using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>A frozen ConvNeXt V2's pooled features per row (global average pooling → <c>head.norm</c>, timm's
/// <c>pre_logits</c>), through the same batching as the ViT encoder (<see cref="ModelRunner"/>).</summary>
internal sealed class ConvNextRunner(ConvNextV2 model, MaeDevice device, PixelNormalization normalization)
    : ModelRunner(model, InputGeometry(model.Config), device, normalization)
{
    public override int OutputLength => model.Config.NumFeatures;
    protected override Tensor Compute(Tensor images) => model.ForwardFeatures(images);

    /// <summary>The image geometry the ML.NET glue binds columns by (channels and size; the ViT fields are unused).</summary>
    internal static MaeConfig InputGeometry(ConvNextV2Config c) => new() { ImageSize = c.ImageSize, InChannels = c.InChannels, PatchSize = c.TotalStride };
}
