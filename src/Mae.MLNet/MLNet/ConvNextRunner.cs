using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>A frozen ConvNeXt V2's pooled features per row (global average pooling → <c>head.norm</c>, timm's
/// <c>pre_logits</c>; of the last <paramref name="stages"/> stages, <see cref="ConvNextV2.ForwardFeatures(Tensor, int)"/>),
/// through the same batching as the ViT encoder (<see cref="ModelRunner"/>).</summary>
internal sealed class ConvNextRunner(ConvNextV2 model, int stages, MaeDevice device, PixelNormalization normalization)
    : ModelRunner(model, model.Config.InputGeometry, device, normalization)
{
    public override int OutputLength => model.FeatureWidth(stages);
    protected override Tensor Compute(Tensor images) => model.ForwardFeatures(images, stages);
}
