using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>The frozen encoder's pooled features (of the last <paramref name="layers"/> blocks) per row (<see cref="ModelRunner"/>).</summary>
internal sealed class EncoderRunner(MaeEncoder encoder, MaePooling pooling, int layers, MaeDevice device, PixelNormalization normalization)
    : ModelRunner(encoder, encoder.Config, device, normalization)
{
    public int FeatureDim => MaeEncoder.FeatureWidth(Config, pooling, layers);
    public override int OutputLength => FeatureDim;
    protected override Tensor Compute(Tensor images) => encoder.ExtractFeatures(images, pooling, layers);
}
