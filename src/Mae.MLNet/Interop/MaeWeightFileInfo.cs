using Mae.MLNet.Model;

namespace Mae.MLNet.Interop;

public static partial class MaeWeightFile
{
    /// <summary>The layout a weights file comes in.</summary>
    public enum Format
    {
        /// <summary>A zip <c>torch.save</c> file (.pth / .bin) with the official names: facebookresearch/mae training,
        /// visualize, encoder-only and fine-tuned files, or a bare state dict.</summary>
        OfficialPth,
        /// <summary>A safetensors file with the official (= timm) names and no config beside it: timm's <c>*.mae</c> weights.</summary>
        TimmSafetensors,
        /// <summary>Hugging Face ViTMAE names: a folder with <c>config.json</c> and <c>model.safetensors</c> or
        /// <c>pytorch_model.bin</c>, or one of those files.</summary>
        HuggingFace,
        /// <summary>Written by <see cref="MaeWeightFile.Save"/>: safetensors with the official names and <c>name.json</c> beside it.</summary>
        Ours,
    }
}

public static partial class MaeWeightFile
{
    /// <summary>What a weights file says about itself, read without loading a tensor (<see cref="MaeWeightFile.ReadInfo"/>).</summary>
    public sealed record Info
    {
        /// <summary>The weights file read (inside a Hugging Face folder: its model.safetensors or pytorch_model.bin).</summary>
        public required string Path { get; init; }
        public required MaeWeightFile.Format Format { get; init; }
        /// <summary>Full MAE, encoder only or fine-tuned classifier, judged by the parameter names.</summary>
        public required MaeWeightFile.Kind Kind { get; init; }
        /// <summary>Parameter names as the file spells them → shapes.</summary>
        public required IReadOnlyDictionary<string, long[]> Shapes { get; init; }
        /// <summary>The official checkpoint's <c>epoch</c> (the last epoch completed, counted from 0), when it has one.</summary>
        public int? Epoch { get; init; }
        /// <summary>The official checkpoint's <c>args</c> (the argparse.Namespace of main_pretrain.py / main_finetune.py).</summary>
        public MaeWeightFile.TrainingArgs? Args { get; init; }
        /// <summary>The architecture a config file beside the weights gives (Hugging Face <c>config.json</c>, our <c>name.json</c>);
        /// null when there is none (the loader then infers it from the shapes and <see cref="Args"/>).</summary>
        public MaeConfig? Config { get; init; }
        /// <summary>Other top-level entries of a checkpoint besides the state dict, <c>args</c> and <c>epoch</c> (optimizer, scaler, ...).</summary>
        public IReadOnlyList<string> OtherEntries { get; init; } = Array.Empty<string>();
    }
}

public static partial class MaeWeightFile
{
    /// <summary>
    /// The arguments an official run was started with (<c>args</c> in facebookresearch/mae checkpoints: the
    /// argparse.Namespace of main_pretrain.py or main_finetune.py), typed where the reference names them; every attribute
    /// also in <see cref="Raw"/>. Fields a run did not have (a fine-tuning run has no <c>norm_pix_loss</c>) are null.
    /// </summary>
    public sealed record TrainingArgs
    {
        /// <summary><c>--model</c>, e.g. <c>mae_vit_base_patch16</c> (pre-training) or <c>vit_base_patch16</c> (fine-tuning).</summary>
        public string? Model { get; init; }
        /// <summary><c>--input_size</c>: the image side the run trained at.</summary>
        public int? InputSize { get; init; }
        /// <summary><c>--norm_pix_loss</c>: the loss target of a pre-training run.</summary>
        public bool? NormPixLoss { get; init; }
        /// <summary><c>--mask_ratio</c>.</summary>
        public double? MaskRatio { get; init; }
        /// <summary><c>--batch_size</c> per GPU.</summary>
        public int? BatchSize { get; init; }
        /// <summary><c>--accum_iter</c>.</summary>
        public int? AccumIter { get; init; }
        /// <summary><c>--epochs</c>.</summary>
        public int? Epochs { get; init; }
        /// <summary><c>--warmup_epochs</c>.</summary>
        public double? WarmupEpochs { get; init; }
        /// <summary><c>--blr</c>, the base learning rate.</summary>
        public double? BaseLearningRate { get; init; }
        /// <summary><c>--lr</c>, the absolute learning rate (main() fills it from blr when it was not given).</summary>
        public double? LearningRate { get; init; }
        /// <summary><c>--min_lr</c>.</summary>
        public double? MinLearningRate { get; init; }
        /// <summary><c>--weight_decay</c>.</summary>
        public double? WeightDecay { get; init; }
        /// <summary><c>--nb_classes</c> (fine-tuning).</summary>
        public int? NbClasses { get; init; }
        /// <summary><c>--global_pool</c> (fine-tuning).</summary>
        public bool? GlobalPool { get; init; }
        /// <summary><c>--drop_path</c> (fine-tuning).</summary>
        public double? DropPath { get; init; }
        /// <summary>Every attribute as unpickled: <see cref="long"/>, <see cref="double"/>, <see cref="string"/>,
        /// <see cref="bool"/>, null, lists, tuples, dicts.</summary>
        public required IReadOnlyDictionary<string, object?> Raw { get; init; }

        /// <summary>The preset whose head counts the <c>--model</c> name implies (official pre-training and fine-tuning
        /// model names), or null.</summary>
        internal MaeConfig? ModelPreset => Model switch
        {
            null => null,
            var m when m.Contains("vit_base_patch16", StringComparison.Ordinal) => MaeConfig.VitBase16,
            var m when m.Contains("vit_large_patch16", StringComparison.Ordinal) => MaeConfig.VitLarge16,
            var m when m.Contains("vit_huge_patch14", StringComparison.Ordinal) => MaeConfig.VitHuge14,
            _ => null,
        };

        /// <summary>Types the attributes of an unpickled argparse.Namespace (or a plain dict of them); null when
        /// <paramref name="args"/> is null. An attribute of a known name but of another type is refused, naming the file.</summary>
        internal static TrainingArgs? From(object? args, string path)
        {
            if (args is null) return null;
            if (args is not Dictionary<object, object?> attributes)
                throw new MaeModelFileException($"'{path}': 'args' is a {args.GetType().Name}, not an argparse.Namespace or a dict.", path, "args");
            var raw = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (key, value) in attributes)
            {
                if (key is not string name)
                    throw new MaeModelFileException($"'{path}': an attribute of 'args' is named {key} ({key.GetType().Name}), not a string.", path, "args");
                raw[name] = value;
            }
            MaeModelFileException Wrong(string name, object value, string expected)
                => new($"'{path}': args.{name} is {value} ({value.GetType().Name}); expected {expected}.", path, "args");
            string? Text(string name) => raw.GetValueOrDefault(name) switch
            {
                null => null, string s => s, var v => throw Wrong(name, v, "a string"),
            };
            bool? Flag(string name) => raw.GetValueOrDefault(name) switch
            {
                null => null, bool b => b, var v => throw Wrong(name, v, "True or False"),
            };
            int? Int(string name) => raw.GetValueOrDefault(name) switch
            {
                null => null, long l when l is >= int.MinValue and <= int.MaxValue => (int)l, var v => throw Wrong(name, v, "a 32-bit integer"),
            };
            double? Number(string name) => raw.GetValueOrDefault(name) switch
            {
                null => null, double d => d, long l => l, var v => throw Wrong(name, v, "a number"),
            };
            return new TrainingArgs
            {
                Model = Text("model"), InputSize = Int("input_size"), NormPixLoss = Flag("norm_pix_loss"), MaskRatio = Number("mask_ratio"),
                BatchSize = Int("batch_size"), AccumIter = Int("accum_iter"), Epochs = Int("epochs"), WarmupEpochs = Number("warmup_epochs"),
                BaseLearningRate = Number("blr"), LearningRate = Number("lr"), MinLearningRate = Number("min_lr"),
                WeightDecay = Number("weight_decay"), NbClasses = Int("nb_classes"), GlobalPool = Flag("global_pool"),
                DropPath = Number("drop_path"), Raw = raw,
            };
        }
    }
}

public static partial class MaeWeightFile
{
    /// <summary>Head counts for a file whose architecture is inferred: shapes cannot tell them, and widths other than the
    /// public ViTs' have no convention. <see cref="DecoderNumHeads"/> may be left out for an encoder-only file.</summary>
    public readonly record struct HeadCounts(int NumHeads, int? DecoderNumHeads = null);
}
