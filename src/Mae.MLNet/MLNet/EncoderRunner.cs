using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>Runs the frozen encoder on a batch of CHW float rows: normalise per channel, forward with no gradient on
/// the configured device, pool, copy the features back. One native scope per batch, so memory stays flat however
/// many rows pass. Calls are serialised (one module, possibly several cursors).</summary>
internal sealed class EncoderRunner : ITensorFunction
{
    readonly MaeEncoder encoder;
    readonly MaePooling pooling;
    readonly Device device;
    readonly float scale;
    readonly float[] mean, std;
    readonly object gate = new();

    public EncoderRunner(MaeEncoder encoder, MaePooling pooling, MaeDevice device, PixelNormalization normalization)
    {
        this.encoder = encoder;
        this.pooling = pooling;
        this.device = device.Resolve();
        normalization.Validate(encoder.Config.InChannels);
        scale = normalization.Scale;
        mean = normalization.Mean.ToArray();
        std = normalization.Std.ToArray();
        lock (gate)
        {
            encoder.to(this.device);
            encoder.eval();
        }
    }

    public MaeConfig Config => encoder.Config;
    public int FeatureDim => encoder.Config.EmbedDim;
    public int OutputLength => FeatureDim;
    public int InputLength => Config.InChannels * Config.ImageSize * Config.ImageSize;

    /// <summary>Features of <paramref name="rows"/> images stored back to back in <paramref name="pixels"/>.</summary>
    public void Run(float[] pixels, int rows, float[] features)
    {
        int c = Config.InChannels, s = Config.ImageSize;
        lock (gate)
        {
            using var noGrad = no_grad();
            using var noGc = NoGcScope.Enter(NoGcScope.InferenceBudget); // see NoGcScope: no GC while TorchSharp temporaries are in native calls
            using var scope = NewDisposeScope();
            var x = tensor(pixels.AsSpan(0, rows * InputLength).ToArray(), new long[] { rows, c, s, s }).to(device);
            var m = tensor(mean).reshape(1, c, 1, 1).to(device);
            var sd = tensor(std).reshape(1, c, 1, 1).to(device);
            x = (x.Times(scale) - m) / sd;
            var f = encoder.ExtractFeatures(x, pooling).to(float32).cpu();
            f.data<float>().CopyTo(features.AsSpan(0, rows * FeatureDim));
        }
    }
}
