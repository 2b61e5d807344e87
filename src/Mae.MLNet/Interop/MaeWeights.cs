using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

public static partial class MaeWeightFile
{
    /// <summary>What a weights file holds, judged by its parameter names.</summary>
    public enum Kind
    {
        /// <summary>Encoder and decoder (mae_visualize_vit_*.pth, training checkpoints, HF ViTMAEForPreTraining).</summary>
        Full,
        /// <summary>Encoder only (mae_pretrain_vit_*.pth, timm <c>*.mae</c>, HF ViTMAEModel).</summary>
        EncoderOnly,
        /// <summary>A fine-tuned classifier (models_vit.py: <c>head</c>, and <c>fc_norm</c> with global pooling).</summary>
        FineTuned,
    }
}

/// <summary>A weights file read into memory under the official parameter names, with the architecture that fits it.</summary>
public sealed class MaeWeights : IDisposable
{
    internal MaeWeights(string source, MaeWeightFile.Format format, Dictionary<string, Tensor> stateDict, MaeConfig config,
                        IReadOnlyDictionary<string, object?> extras, MaeWeightFile.TrainingArgs? args)
    {
        Source = source;
        Format = format;
        StateDict = stateDict;
        Config = config;
        Extras = extras;
        Args = args;
        Kind = WeightNames.KindOf(stateDict.Keys);
    }

    public string Source { get; }
    /// <summary>The layout the file came in (its names, and whether a config file was beside it).</summary>
    public MaeWeightFile.Format Format { get; }
    public MaeWeightFile.Kind Kind { get; }
    /// <summary>Official names → float32 CPU tensors.</summary>
    public IReadOnlyDictionary<string, Tensor> StateDict { get; }
    /// <summary>The architecture: given by the caller, read from a config file, or inferred from tensor shapes.</summary>
    public MaeConfig Config { get; }
    /// <summary>Other top-level entries of a training checkpoint (<c>epoch</c>, <c>args</c>, <c>optimizer</c>, ...), as plain
    /// values: <see cref="long"/>, <see cref="double"/>, <see cref="string"/>, <see cref="bool"/>, <c>null</c>, dicts and
    /// argparse namespaces as <c>Dictionary&lt;object, object?&gt;</c>, lists as <c>List&lt;object?&gt;</c>, tuples as
    /// <c>object?[]</c>. Their tensors (optimizer moments, ...) are <see cref="MaeUnloadedTensor"/> descriptions: only the
    /// state dict is loaded.</summary>
    public IReadOnlyDictionary<string, object?> Extras { get; }
    /// <summary>The official checkpoint's <c>args</c>, typed (also in <see cref="Extras"/>); null when the file has none.</summary>
    public MaeWeightFile.TrainingArgs? Args { get; }
    /// <summary>Classes of a fine-tuned head, else null.</summary>
    public int? NumClasses => StateDict.TryGetValue("head.weight", out var h) ? (int)h.shape[0] : null;
    /// <summary>True for fine-tuned files with global pooling (fc_norm present, no final norm).</summary>
    public bool GlobalPool => StateDict.ContainsKey("fc_norm.weight");

    public void Dispose()
    {
        foreach (var t in StateDict.Values) t.Dispose();
    }
}
