using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>A fine-tuned classifier's (<see cref="VitClassifier"/> or <see cref="ConvNextV2"/>) class probabilities per
/// row (softmax of the logits; <see cref="ModelRunner"/>). <paramref name="geometry"/>: the images it takes.</summary>
internal sealed class ClassifierRunner(nn.Module<Tensor, Tensor> model, MaeConfig geometry, int numClasses, MaeDevice device, PixelNormalization normalization)
    : ModelRunner(model, geometry, device, normalization)
{
    public override int OutputLength => numClasses;
    protected override Tensor Compute(Tensor images) => nn.functional.softmax(model.forward(images).to(float32), -1);
}
