using System.Globalization;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet.TrainHost;

/// <summary>The tiny configuration and synthetic data shared by the training tests and the child process.</summary>
public static class TinyRun
{
    /// <summary>16×16 RGB, patch 4 (16 patches), encoder 32 wide × 2 blocks, decoder 16 wide × 1 block.</summary>
    public static MaeConfig Config => new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    /// <summary>Deterministic smooth images computed in managed code (no random generator involved).</summary>
    public static List<float[]> Images(int count, int size = 16, int channels = 3)
    {
        var list = new List<float[]>(count);
        for (int i = 0; i < count; i++)
        {
            var a = new float[channels * size * size];
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                        a[(c * size + y) * size + x] =
                            (float)(0.5 + 0.4 * Math.Sin(0.3 * (x + 1) * (i % 7 + 1) + 0.2 * y * (c + 1) + i));
            list.Add(a);
        }
        return list;
    }

    public static MaePretrainOptions Options(int epochs, string? checkpointDir = null) => new()
    {
        BatchSize = 4, AccumIter = 1, Epochs = epochs, WarmupEpochs = 1, LearningRate = 1e-3,
        Seed = 7, Device = MaeDevice.Cpu, Threads = 1, CheckpointDir = checkpointDir, CheckpointEvery = 1,
    };

    /// <summary>Losses as exact hexadecimal float bits, one per line.</summary>
    public static string FormatLosses(IEnumerable<float> losses)
        => string.Join("\n", losses.Select(l => BitConverter.SingleToInt32Bits(l).ToString("X8", CultureInfo.InvariantCulture)));

    public static float[] ParseLosses(string text)
        => text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => BitConverter.Int32BitsToSingle(int.Parse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture))).ToArray();
}
