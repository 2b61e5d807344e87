using System.CommandLine;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;

namespace Mae.Cli;

/// <summary>What every command gets: where to write, and the token Ctrl+C cancels.</summary>
public sealed record CliContext(TextWriter Output, CancellationToken Cancellation);

/// <summary>Options shared by several commands, declared once.</summary>
internal static class CommonOptions
{
    public static Option<FileInfo> Weights(bool required) => new("--weights")
    {
        Description = "MAE weights: official .pth, timm / Mae.MLNet .safetensors, a Hugging Face folder, or a checkpoint of `mae pretrain` " +
                      "(.maeckpt) or `mae finetune` (.maeft), so a stopped run's weights can be used as they are.",
        Required = required,
    };
    public static Option<bool> SkipBadFiles() => new("--skip-bad-files")
    {
        Description = "Leave out unreadable images (each listed at the end as 'skipped FILE: why') instead of stopping at the first with exit code 2.",
    };
    public static Option<double> ProgressSeconds() => new("--progress-seconds")
    {
        Description = "When the output is not a terminal (a log file, a pipe): seconds between progress lines on it (0: at every step). " +
                      "When standard error is a terminal, a live line there shows the progress as well.",
        DefaultValueFactory = _ => 30,
    };
    /// <summary><c>--resume</c>: continue from the latest checkpoint of <paramref name="folder"/>, or say there is none and start
    /// at epoch 1; <c>--resume=require</c> refuses to start without one (exit code <see cref="MaeCli.ExitNothingToResume"/>).</summary>
    public static Option<string?> Resume(string folder) => WithChoices(new Option<string?>("--resume")
    {
        Description = $"Continue from the latest checkpoint in {folder} (same --batch-size and --accum-iter); without one, say so and start at " +
                      $"epoch 1. --resume=require refuses to start when there is none (exit code {MaeCli.ExitNothingToResume}, naming the folder).",
        Arity = ArgumentArity.ZeroOrOne,
    }, "require", "true", "false");
    /// <summary>What <see cref="Resume"/> asks: (resume, refuse when there is nothing to resume).</summary>
    public static (bool Resume, bool Require) ParseResume(ParseResult r, Option<string?> option)
        => r.GetResult(option) is not { Implicit: false } ? (false, false) : r.GetValue(option) switch
        {
            "require" => (true, true),
            "false" => (false, false),
            _ => (true, false),
        };
    public static Option<DirectoryInfo> Images(string what) => new("--images") { Description = what, Required = true };
    public static Option<string> Device() => WithChoices(new Option<string>("--device")
    {
        Description = "Where to run: auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => "auto",
    }, "auto", "cpu", "cuda");
    public static Option<string> Pooling() => WithChoices(new Option<string>("--pooling")
    {
        Description = "Feature vector per block: cls (the cls token), mean (mean of the patch tokens) or quadrants (the mean of each " +
                      "quadrant's patch tokens: 4 × the width).", DefaultValueFactory = _ => "mean",
    }, "cls", "mean", "quadrants");
    public static Option<int?> Layers() => new("--layers")
    {
        Description = "Concatenate the pooled tokens of the last N blocks (each through the final norm). Default: every block of an " +
                      "encoder of up to 6 (the small-image presets), the last 4 of a deeper one (MaeConfig.FeatureLayers: the " +
                      "README's best linear probe). ConvNeXt V2 weights: the pooled features of the last N stages (1–4, default 1).",
    };
    public static int ResolveLayers(int? given, MaeConfig config)
        => CliFlags.Check(() => MaeEncoder.ResolveLayers(given, config, "Layers"));
    public static Option<int?> ImageSize() => new("--input-size")
    {
        Description = $"Model input size in pixels, at most {MaxInputSize} (default: the weights' own size; position embeddings are interpolated).",
    };

    /// <summary>Far above any public MAE (224–448 px) and below sizes whose position table and attention cannot fit in memory.</summary>
    public const int MaxInputSize = 4096;
    /// <summary>One batch of input pixels may take at most this much memory (before the model's activations).</summary>
    const long MaxBatchBytes = 8L << 30;

    public static int? CheckInputSize(int? size) => size is int s ? CheckInputSize(s) : null;
    public static int CheckInputSize(int size)
        => size is >= 1 and <= MaxInputSize ? size : throw new CliException($"--input-size must be between 1 and {MaxInputSize} pixels; got {size}.");

    /// <summary>The batch: the flag's, else the recipe's halved while it exceeds the folder's <paramref name="images"/>
    /// (down to 2, kept even for mixup), so that a small folder trains without a flag; the learning rate follows through
    /// blr × batch / 256. A change is said on <paramref name="output"/>.</summary>
    public static int FitBatch(int? given, int recipe, int images, TextWriter output)
    {
        if (given is int g) return g;
        int batch = recipe;
        while (batch > 2 && batch > images) batch /= 2;
        if (batch != recipe)
            output.WriteLine($"batch: {batch} images per step (the recipe's {recipe} is more than the folder's {images} images; --batch-size sets another)");
        return batch;
    }

    /// <summary>Refuses a batch whose pixels alone would take more than 8 GiB, before any memory is asked for.</summary>
    public static void CheckBatchMemory(int batchSize, MaeConfig config)
    {
        long bytes = (long)batchSize * config.InChannels * config.ImageSize * config.ImageSize * sizeof(float);
        if (bytes > MaxBatchBytes)
            throw new CliException($"--batch-size {batchSize} of {config.InChannels}×{config.ImageSize}×{config.ImageSize} images needs {bytes / (double)(1L << 30):F1} GiB " +
                                   $"for the pixels alone (at most {MaxBatchBytes >> 30} GiB); lower --batch-size (and raise --accum-iter for the same effective batch).");
    }

    /// <summary>A model in a few words: size, patch, channels, encoder and decoder widths × depths, the loss target.</summary>
    public static string Describe(MaeConfig c)
        => $"{c.ImageSize} px, patch {c.PatchSize}, {c.InChannels} channel(s), encoder {c.EmbedDim}×{c.Depth} blocks ({c.NumHeads} heads), " +
           $"decoder {c.DecoderEmbedDim}×{c.DecoderDepth}, norm-pix-loss {(c.NormPixLoss ? "on" : "off")}";

    /// <summary>What a run computes in and on, with auto resolved ("bf16 on cpu"), for the start-up summary.</summary>
    public static string DescribeCompute(MaePrecision precision, MaeDevice device)
    {
        var type = device.Resolve().type;
        return $"{precision.Resolve(type).ToString().ToLowerInvariant()} on {type.ToString().ToLowerInvariant()}";
    }
    public static Option<string?> Heads() => new("--num-heads")
    {
        Description = "Head counts, encoder[,decoder] (e.g. 6 or 6,8), for weights whose width no preset has (the file stores no head count).",
    };
    public static Option<string> Precision() => WithChoices(new Option<string>("--precision")
    {
        Description = "auto (bf16 on a GPU or a CPU with AVX512_BF16, else fp32), fp32, or bf16 mixed precision.", DefaultValueFactory = _ => "auto",
    }, "auto", "fp32", "bf16");
    public static Option<double?> Minutes()
    {
        var option = new Option<double?>("--minutes")
        {
            Description = "Time box: time a few steps, then train the epochs that fit (at most --epochs or the recipe's), the warm-up scaled with them; prints the plan, " +
                          "and re-fits the epochs left at each epoch end to the pace of the last epochs (the lr schedule stays continuous).",
        };
        option.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is double m && !(m > 0 && double.IsFinite(m))) r.AddError($"--minutes must be a number > 0; got {m}."); });
        return option;
    }
    public static Option<int> Seed() => new("--seed") { Description = "Seed for libtorch and ML.NET.", DefaultValueFactory = _ => 0 };

    /// <summary><c>--num-heads</c>: "E" or "E,D" → head counts, or null when not given.</summary>
    public static MaeWeightFile.HeadCounts? ParseHeads(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        var parts = value.Split(',');
        int Part(string text) => int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new CliException($"--num-heads takes one or two positive integers (encoder[,decoder]); got '{value}'.");
        return parts.Length switch
        {
            1 => new MaeWeightFile.HeadCounts(Part(parts[0])),
            2 => new MaeWeightFile.HeadCounts(Part(parts[0]), Part(parts[1])),
            _ => throw new CliException($"--num-heads takes one or two positive integers (encoder[,decoder]); got '{value}'."),
        };
    }

    public static MaeDevice ParseDevice(string value) => value switch { "cpu" => MaeDevice.Cpu, "cuda" => MaeDevice.Cuda, _ => MaeDevice.Auto };
    public static Mae.MLNet.Runtime.MaePrecision ParsePrecision(string value) => value switch
    {
        "fp32" => Mae.MLNet.Runtime.MaePrecision.Fp32, "bf16" => Mae.MLNet.Runtime.MaePrecision.Bf16, _ => Mae.MLNet.Runtime.MaePrecision.Auto,
    };
    public static MaePooling ParsePooling(string value) => value switch { "cls" => MaePooling.Cls, "quadrants" => MaePooling.Quadrants, _ => MaePooling.Mean };

    static Option<T> WithChoices<T>(Option<T> option, params string[] choices)
    {
        option.AcceptOnlyFromAmong(choices);
        return option;
    }
}
