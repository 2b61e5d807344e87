using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet;

/// <summary>Runs a frozen model on a batch of CHW float rows: normalise per channel, forward in eval mode with no
/// gradient on the configured device, copy <see cref="ITensorFunction.OutputLength"/> floats per row back. One native
/// scope per batch, so memory stays flat however many rows pass. Calls are serialised: one module, possibly several
/// cursors. No GC-free region is needed: the forward pass holds every libtorch Scalar it passes to native code
/// (<see cref="ScalarMath"/>), so a collection during a batch cannot free one mid-call (earlier versions forced a
/// gen-2 collection per batch and per PredictionEngine row for that; see docs/security.md).</summary>
internal abstract class ModelRunner : ITensorFunction
{
    readonly nn.Module module;
    readonly Device device;
    readonly PixelNormalization normalization;
    readonly object gate = new();

    protected ModelRunner(nn.Module module, MaeConfig config, MaeDevice device, PixelNormalization normalization)
    {
        this.module = module;
        Config = config;
        this.device = device.Resolve();
        this.normalization = normalization.Validate(config.InChannels) with
        {
            Mean = normalization.Mean.ToArray(), Std = normalization.Std.ToArray(),   // a copy the caller cannot change
        };
        lock (gate)
        {
            module.to(this.device);
            module.eval();
        }
    }

    public MaeConfig Config { get; }
    public abstract int OutputLength { get; }
    public int InputLength => Config.InChannels * Config.ImageSize * Config.ImageSize;

    /// <summary>The model's output for a normalised [N, C, H, W] batch: [N, OutputLength].</summary>
    protected abstract Tensor Compute(Tensor images);

    /// <summary>Outputs of <paramref name="rows"/> images stored back to back in <paramref name="pixels"/>.</summary>
    public void Run(float[] pixels, int rows, float[] outputs)
    {
        int c = Config.InChannels, s = Config.ImageSize;
        lock (gate)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            if (module.training) module.eval();
            var x = tensor(pixels.AsSpan(0, rows * InputLength).ToArray(), new long[] { rows, c, s, s }).to(device);
            var y = Compute(normalization.Apply(x)).to(float32).cpu();
            y.data<float>().CopyTo(outputs.AsSpan(0, rows * OutputLength));
        }
    }
}
