using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>Runs a fine-tuned <see cref="VitClassifier"/> on a batch of CHW float rows: normalise per channel,
/// forward in eval mode with no gradient, softmax; writes the class probabilities. One native scope per batch;
/// calls are serialised.</summary>
internal sealed class ClassifierRunner : ITensorFunction
{
    readonly VitClassifier model;
    readonly Device device;
    readonly float scale;
    readonly float[] mean, std;
    readonly object gate = new();

    public ClassifierRunner(VitClassifier model, MaeDevice device, PixelNormalization normalization)
    {
        this.model = model;
        this.device = device.Resolve();
        normalization.Validate(model.Config.InChannels);
        scale = normalization.Scale;
        mean = normalization.Mean.ToArray();
        std = normalization.Std.ToArray();
        lock (gate)
        {
            model.to(this.device);
            model.eval();
        }
    }

    public MaeConfig Config => model.Config;
    public int OutputLength => model.NumClasses;
    int InputLength => Config.InChannels * Config.ImageSize * Config.ImageSize;

    public void Run(float[] pixels, int rows, float[] outputs)
    {
        int c = Config.InChannels, s = Config.ImageSize;
        lock (gate)
        {
            using var noGrad = no_grad();
            using var noGc = NoGcScope.Enter(NoGcScope.InferenceBudget); // see NoGcScope: no GC while TorchSharp temporaries are in native calls
            using var scope = NewDisposeScope();
            if (model.training) model.eval();
            var x = tensor(pixels.AsSpan(0, rows * InputLength).ToArray(), new long[] { rows, c, s, s }).to(device);
            var m = tensor(mean).reshape(1, c, 1, 1).to(device);
            var sd = tensor(std).reshape(1, c, 1, 1).to(device);
            x = (x.Times(scale) - m) / sd;
            var p = nn.functional.softmax(model.forward(x).to(float32), -1).cpu();
            p.data<float>().CopyTo(outputs.AsSpan(0, rows * OutputLength));
        }
    }
}
