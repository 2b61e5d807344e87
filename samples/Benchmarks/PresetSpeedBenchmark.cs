using System.Text.RegularExpressions;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Training-step speed of several 32-px architectures side by side (how the small-image presets' widths, depths and
/// patch sizes were chosen): each candidate trains its own model on synthetic batches, all alternating window by window
/// in one run (<see cref="TrainingBenchmark.RunInterleaved"/>), so the shared machine's load hits them alike. A candidate
/// is a preset name or <c>p{patch}-e{width}x{depth}x{heads}-d{width}x{depth}x{heads}</c> (32 px RGB, norm_pix_loss).
/// </summary>
public static partial class PresetSpeedBenchmark
{
    [GeneratedRegex(@"^p(\d+)-e(\d+)x(\d+)x(\d+)-d(\d+)x(\d+)x(\d+)$")]
    private static partial Regex Spec();

    public static MaeConfig Parse(string name)
    {
        var m = Spec().Match(name);
        if (!m.Success) return MaeConfig.Preset(name);
        int G(int i) => int.Parse(m.Groups[i].Value);
        return new MaeConfig
        {
            ImageSize = 32, PatchSize = G(1), InChannels = 3, EmbedDim = G(2), Depth = G(3), NumHeads = G(4),
            DecoderEmbedDim = G(5), DecoderDepth = G(6), DecoderNumHeads = G(7), NormPixLoss = true,
        }.Validate();
    }

    public static void Run(IReadOnlyList<string> names, ScalarType? dtype, TrainOptions o, TextWriter log, Device device)
    {
        var variants = names.Select(n => new TrainVariant(dtype, false, Parse(n), n)).ToList();
        log.WriteLine($"presets: {string.Join(", ", names)}, alternating window by window: {o.Steps} steps of batch {o.Batch}");
        var results = TrainingBenchmark.RunInterleaved(variants[0].Config!, variants, o, log, device);
        Console.WriteLine($"## Training step of 32-px candidates, {TrainingBenchmark.Label(dtype)}, batch {o.Batch}, mask {o.MaskRatio}, {device}");
        Console.WriteLine();
        Console.WriteLine($"{o.Steps} steps, the first {o.Warmup} untimed, img/s over windows of {o.Window} steps, the candidates alternating window by window.");
        Console.WriteLine();
        Console.WriteLine("| candidate | encoder params (M) | GFLOP / image-step | img/s median | img/s best | vs first | loss, last window |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        var first = results[0];
        for (int i = 0; i < results.Count; i++)
        {
            var c = variants[i].Config!;
            double encoderParams = (double)c.Depth * (12L * c.EmbedDim * c.EmbedDim) / 1e6;
            Console.WriteLine($"| {names[i]} | {encoderParams:F2} | {MaeFlops.TrainingStep(c, o.MaskRatio) / 1e9:F3} | {results[i].ImagesPerSecond.Median:F0} | " +
                              $"{results[i].ImagesPerSecond.Best:F0} | {results[i].ImagesPerSecond.Median / first.ImagesPerSecond.Median:F2}× | {results[i].TailLoss:F4} |");
        }
        Console.WriteLine();
    }
}
