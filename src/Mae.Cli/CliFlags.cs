using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace Mae.Cli;

/// <summary>What the user typed, in the user's words: the library's option checks name C# properties, the tool names
/// its flags; a mistyped flag gets the nearest real one.</summary>
internal static partial class CliFlags
{
    static readonly Dictionary<string, string> Flags = new(StringComparer.Ordinal)
    {
        ["WarmupEpochs"] = "--warmup-epochs", ["Epochs"] = "--epochs", ["BatchSize"] = "--batch-size", ["AccumIter"] = "--accum-iter",
        ["BaseLearningRate"] = "--blr", ["LearningRate"] = "--lr", ["MinLearningRate"] = "--min-lr", ["WeightDecay"] = "--weight-decay",
        ["MaskRatio"] = "--mask-ratio", ["LayerDecay"] = "--layer-decay", ["DropPath"] = "--drop-path", ["LabelSmoothing"] = "--smoothing",
        ["Mixup"] = "--mixup", ["Cutmix"] = "--cutmix", ["CheckpointEvery"] = "--checkpoint-every", ["Workers"] = "--num-workers",
        ["ContrastiveWeight"] = "--contrastive-weight", ["Layers"] = "--layers", ["Seed"] = "--seed", ["ImageSize"] = "--input-size",
        ["RandomErasingProbability"] = "--reprob", ["ScaleMin"] = "--crop-scale",
    };

    [GeneratedRegex(@"\b(WarmupEpochs|Epochs|BatchSize|AccumIter|BaseLearningRate|LearningRate|MinLearningRate|WeightDecay|MaskRatio|LayerDecay|DropPath|LabelSmoothing|Mixup|Cutmix|CheckpointEvery|Workers|ContrastiveWeight|Layers|Seed|ImageSize|RandomErasingProbability|ScaleMin)\b")]
    private static partial Regex PropertyNames();

    /// <summary>Runs a library option check; its message comes back with flag names instead of property names.</summary>
    public static void Check(Action validate) => Check(() => { validate(); return 0; });

    /// <summary><see cref="Check(Action)"/> for a library call that resolves a value.</summary>
    public static T Check<T>(Func<T> resolve)
    {
        try { return resolve(); }
        catch (ArgumentException e) { throw new CliException(PropertyNames().Replace(OneLine(e), m => Flags[m.Value])); }
    }

    /// <summary>An exception's message on one line: without .NET's "(Parameter 'x')" and "Actual value was" additions.</summary>
    public static string OneLine(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name })
        {
            int at = message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal);
            if (at >= 0) message = message[..at];
        }
        int newline = message.IndexOfAny(['\r', '\n']);
        return newline < 0 ? message : string.Join(" ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()));
    }

    /// <summary>For each unrecognised token that looks like a flag, the command's flag nearest to it (edit distance at
    /// most 2, or a prefix of one flag), as "did you mean" lines.</summary>
    public static IEnumerable<string> Suggestions(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var names = command.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).Concat(command.Subcommands.Select(c => c.Name)).Distinct().ToList();
        foreach (var token in parse.UnmatchedTokens)
        {
            string typed = token.Split('=')[0];
            var prefixed = names.Where(n => n.StartsWith(typed, StringComparison.Ordinal) && typed.Length >= 3).ToList();
            string? best = prefixed.Count == 1 ? prefixed[0]
                : names.Select(n => (Name: n, Distance: Distance(typed, n))).Where(x => x.Distance <= Math.Max(1, Math.Min(2, typed.Length / 4)))
                    .OrderBy(x => x.Distance).Select(x => x.Name).FirstOrDefault();
            if (best is not null) yield return $"'{typed}' is not a flag of 'mae {command.Name}'; did you mean '{best}'?";
        }
    }

    static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
