using Mae.MLNet.FineTuning;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Input;

namespace Mae.MLNet.Tests.FineTuning;

internal sealed class SyncFtProgress(Action<MaeFineTuneProgress> report) : IProgress<MaeFineTuneProgress>
{
    public void Report(MaeFineTuneProgress value) => report(value);
}

/// <summary>A tiny classifier and a synthetic 3-class data set (a bright horizontal band in one of three places + noise).</summary>
internal static class TinyFt
{
    public static readonly MaeConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 1, EmbedDim = 32, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 32, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    public static readonly MaeImageShape Shape = new(1, 16, 16);

    public static (List<float[]> Images, List<long> Labels) Data(int n, int seed = 7)
    {
        var rng = new Random(seed);
        var images = new List<float[]>();
        var labels = new List<long>();
        for (int i = 0; i < n; i++)
        {
            int k = i % 3;
            var img = new float[256];
            for (int j = 0; j < img.Length; j++) img[j] = (float)(rng.NextDouble() * 0.3);
            for (int y = 5 * k; y < 5 * k + 5; y++)
                for (int x = 0; x < 16; x++) img[y * 16 + x] = 0.9f;
            images.Add(img);
            labels.Add(k);
        }
        return (images, labels);
    }

    public static MaeLabeledImageSource Source(int n, int seed = 7)
    {
        var (images, labels) = Data(n, seed);
        return MaeLabeledImageSource.FromArrays(images, labels, Shape);
    }

    public static MaeFineTuneOptions Options(int epochs) => new()
    {
        Epochs = epochs, WarmupEpochs = 0.5, BatchSize = 8, LearningRate = 3e-3, Seed = 3, Device = MaeDevice.Cpu, Threads = 1,
        LogEvery = 1, DropPath = 0.1,
        Augmentation = new MaeAugmentationOptions { OutputSize = 16, Channels = 1, ScaleMin = 0.8, HorizontalFlipProbability = 0.5 },
    };
}
