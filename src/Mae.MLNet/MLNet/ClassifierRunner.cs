using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>A fine-tuned <see cref="VitClassifier"/>'s class probabilities per row (softmax of the logits;
/// <see cref="ModelRunner"/>).</summary>
internal sealed class ClassifierRunner(VitClassifier model, MaeDevice device, PixelNormalization normalization)
    : ModelRunner(model, model.Config, device, normalization)
{
    public override int OutputLength => model.NumClasses;
    protected override Tensor Compute(Tensor images) => nn.functional.softmax(model.forward(images).to(float32), -1);
}
