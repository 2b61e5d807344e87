using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// A fixed synthetic image set with learnable structure (so a loss comparison means something): smooth colour
/// fields (random coarse grids upsampled bilinearly) plus a random linear ramp per image, roughly unit scale.
/// Fully determined by the seed; masking noise comes from its own seeded generator, so two runs with the same
/// seed see the same batches and the same masks.
/// </summary>
public sealed class SyntheticImages : IDisposable
{
    readonly Tensor[] batches;
    readonly Generator noiseGenerator;
    readonly int numPatches;
    readonly Device device;

    /// <param name="device">Where the batches and the masking noise live (drawn on the CPU either way, so every
    /// device sees the same data). Null: the CPU.</param>
    public SyntheticImages(int imageSize, int channels, int numPatches, int batchSize, int numBatches, long seed, Device? device = null)
    {
        this.numPatches = numPatches;
        this.device = device ?? CPU;
        using var g = new Generator((ulong)seed);
        noiseGenerator = new Generator((ulong)seed + 1);
        int coarse = 2; // 2×2 colour grid per image: smooth, so a masked patch is predictable from its neighbours
        batches = new Tensor[numBatches];
        for (int i = 0; i < numBatches; i++)
        {
            using var scope = NewDisposeScope();
            var grid = randn(new long[] { batchSize, channels, coarse, coarse }, generator: g);
            var smooth = nn.functional.interpolate(grid, size: new long[] { imageSize, imageSize },
                mode: InterpolationMode.Bilinear, align_corners: false);
            var ramp = linspace(-1, 1, imageSize).reshape(1, 1, 1, imageSize);
            var slope = randn(new long[] { batchSize, channels, 1, 1 }, generator: g);
            batches[i] = (smooth + slope * ramp).contiguous().to(this.device).MoveToOuterDisposeScope();
        }
    }

    public Tensor Batch(int step) => batches[step % batches.Length];

    /// <summary>Masking noise for the next step: [batch, L] uniform, from the set's own generator.</summary>
    public Tensor NextNoise(long batchSize) => rand(new long[] { batchSize, numPatches }, generator: noiseGenerator).to(device);

    public void Dispose()
    {
        foreach (var b in batches) b.Dispose();
        noiseGenerator.Dispose();
    }
}
