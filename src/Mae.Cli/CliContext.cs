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
        Description = "MAE weights: official .pth, timm / Mae.MLNet .safetensors, or a Hugging Face folder.", Required = required,
    };
    public static Option<DirectoryInfo> Images(string what) => new("--images") { Description = what, Required = true };
    public static Option<string> Device() => WithChoices(new Option<string>("--device")
    {
        Description = "Where to run: auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => "auto",
    }, "auto", "cpu", "cuda");
    public static Option<string> Pooling() => WithChoices(new Option<string>("--pooling")
    {
        Description = "Feature vector: cls (the cls token) or mean (mean of the patch tokens).", DefaultValueFactory = _ => "mean",
    }, "cls", "mean");
    public static Option<int> Layers() => new("--layers")
    {
        Description = "Concatenate the pooled tokens of the last N blocks (each through the final norm).", DefaultValueFactory = _ => 1,
    };
    public static Option<int?> ImageSize() => new("--input-size") { Description = "Model input size in pixels (default: the weights' own size; position embeddings are interpolated)." };
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
            Description = "Time box: time a few steps, then train the epochs that fit (at most --epochs or the recipe's), the warm-up scaled with them; prints the plan.",
        };
        option.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is double m && !(m > 0 && double.IsFinite(m))) r.AddError($"--minutes must be a number > 0; got {m}."); });
        return option;
    }
    public static Option<int> Seed() => new("--seed") { Description = "Seed for libtorch and ML.NET.", DefaultValueFactory = _ => 0 };

    /// <summary><c>--num-heads</c>: "E" or "E,D" → head counts, or null when not given.</summary>
    public static MaeHeadCounts? ParseHeads(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        var parts = value.Split(',');
        int Part(string text) => int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0
            ? n : throw new CliException($"--num-heads takes one or two positive integers (encoder[,decoder]); got '{value}'.");
        return parts.Length switch
        {
            1 => new MaeHeadCounts(Part(parts[0])),
            2 => new MaeHeadCounts(Part(parts[0]), Part(parts[1])),
            _ => throw new CliException($"--num-heads takes one or two positive integers (encoder[,decoder]); got '{value}'."),
        };
    }

    public static MaeDevice ParseDevice(string value) => value switch { "cpu" => MaeDevice.Cpu, "cuda" => MaeDevice.Cuda, _ => MaeDevice.Auto };
    public static Mae.MLNet.Training.MaePrecision ParsePrecision(string value) => value switch
    {
        "fp32" => Mae.MLNet.Training.MaePrecision.Fp32, "bf16" => Mae.MLNet.Training.MaePrecision.Bf16, _ => Mae.MLNet.Training.MaePrecision.Auto,
    };
    public static MaePooling ParsePooling(string value) => value == "cls" ? MaePooling.Cls : MaePooling.Mean;

    static Option<string> WithChoices(Option<string> option, params string[] choices)
    {
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    /// <summary>A file the command will write: its folder must exist (or be creatable) and the name must be given.</summary>
    public static string OutputFile(FileInfo file, string flag, params string[] extensions)
    {
        if (extensions.Length > 0 && !extensions.Contains(file.Extension.ToLowerInvariant()))
            throw new CliException($"{flag}: expected a file ending in {string.Join(" or ", extensions)}; got '{file.Name}'.");
        Directory.CreateDirectory(file.DirectoryName ?? ".");
        return file.FullName;
    }

    public static string InputFile(FileInfo file, string flag)
    {
        if (!file.Exists && !Directory.Exists(file.FullName))
            throw new CliException($"{flag}: '{file.FullName}' does not exist.");
        return file.FullName;
    }
}
