using Mae.MLNet.Evaluation;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>An attentive probe's class probabilities per row: the frozen encoder's patch tokens through the pooler and
/// head, softmax (<see cref="ModelRunner"/>).</summary>
internal sealed class AttentiveProbeRunner : ModelRunner
{
    readonly MaeEncoder encoder;
    readonly AttentiveClassifier probe;
    readonly int layers;

    public AttentiveProbeRunner(MaeEncoder encoder, AttentiveClassifier probe, MaeDevice device, PixelNormalization normalization)
        : base(encoder, encoder.Config, device, normalization)
    {
        this.encoder = encoder;
        this.probe = probe;
        layers = MaeAttentiveProber.LayersOf(encoder, probe);
        probe.to(device.Resolve());
        probe.eval();
    }

    public override int OutputLength => probe.NumClasses;

    protected override Tensor Compute(Tensor images)
    {
        if (probe.training) probe.eval();
        return nn.functional.softmax(probe.forward(MaeAttentiveProber.PatchTokens(encoder, images, layers)), -1);
    }
}
