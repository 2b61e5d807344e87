using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.PyBridge;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>
/// Loads public MAE weights — official facebookresearch/mae <c>.pth</c> files (training checkpoints, encoder-only,
/// visualize, fine-tuned), timm <c>*.mae</c> safetensors, Hugging Face ViTMAE folders (<c>config.json</c> +
/// <c>model.safetensors</c> or <c>pytorch_model.bin</c>) — and saves ours as safetensors with the official names plus
/// a small JSON config that PyTorch code can read.
/// </summary>
public static partial class MaeWeightFile
{
    /// <summary>Reads a weights file (or a Hugging Face folder) and works out its architecture.</summary>
    /// <param name="path">.pth / .bin / .safetensors file, or a folder with config.json.</param>
    /// <param name="config">The architecture, when known; otherwise read from a config file or inferred from the
    /// shapes and an official checkpoint's <c>args</c> (<c>norm_pix_loss</c>, <c>input_size</c>, <c>model</c>). When given, it
    /// must agree with <c>args.norm_pix_loss</c>. (Its image size may differ from the file's: the position tables are
    /// then interpolated, as <c>imageSize</c> asks elsewhere.)</param>
    /// <param name="preset">A preset name (vit-b16, ...) to take head counts from when they must be inferred.</param>
    /// <param name="limits">What the file may make the loader read and build; <see cref="MaeLoadLimits.Default"/> if null.</param>
    /// <param name="heads">Head counts when they must be inferred (widths other than the public ViTs'); not with <paramref name="config"/>.</param>
    /// <exception cref="MaeModelFileException">The file (or a config file beside it) is corrupt, hostile, over a limit
    /// or inconsistent, or its <c>args</c> contradict <paramref name="config"/>; the message names the file and the entry.</exception>
    public static MaeWeights Read(string path, MaeConfig? config = null, string? preset = null, MaeLoadLimits? limits = null,
                                  MaeHeadCounts? heads = null)
    {
        if (path is null) throw new ArgumentNullException(nameof(path));
        Runtime.TorchBackend.EnsureAvailable();   // tensors are made below: say first when libtorch is missing
        limits = (limits ?? MaeLoadLimits.Default).Validate();
        config?.Validate();
        CheckHeads(heads, config);
        var presetConfig = preset is null ? null : MaeConfig.Preset(preset);
        var (file, hfConfig, ourConfig) = Locate(path);
        string source = path;
        MaeConfig? fromFile = null;
        string? configFile = null;
        if (config is null && File.Exists(ourConfig) && ConfigInference.FromOurJson(ourConfig, limits) is { } ours)
            (fromFile, configFile) = (ours, ourConfig);

        var contents = WeightFiles.Read(file, limits);
        Dictionary<string, Tensor>? sd = null;
        try
        {
            var args = MaeTrainingArgs.From(contents.Extras.GetValueOrDefault("args"), source);
            WeightsFormat format;
            (sd, format) = WeightNames.ToOfficial(contents.Tensors, source);
            if (config is null && format == WeightsFormat.HuggingFace && fromFile is null && File.Exists(hfConfig))
                (fromFile, configFile) = (ConfigInference.FromHuggingFace(hfConfig, limits), hfConfig);
            MaeConfig resolved;
            if (config is not null)
            {
                if (args?.NormPixLoss is bool npl && npl != config.NormPixLoss)
                    throw new MaeModelFileException(
                        $"'{source}' was trained with args.norm_pix_loss = {npl}, but the config given has NormPixLoss = {config.NormPixLoss}. " +
                        $"Pass `config with {{ NormPixLoss = {npl.ToString().ToLowerInvariant()} }}`, or no config to take it from the file.", source, "args");
                resolved = config;
            }
            else
            {
                // Untrusted numbers (a config file, args, or parameter names): held against the tensors present before
                // any module is built.
                var shapes = sd.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
                resolved = fromFile ?? FromShapesAndArgs(shapes, presetConfig, heads, args, source, limits);
                ConfigInference.CheckAgainstTensors(resolved, shapes, configFile is null ? source : $"{source}' with config '{configFile}", limits,
                    decoder: shapes.Keys.Any(k => k.StartsWith("decoder_", StringComparison.Ordinal)));
            }
            var floats = ToFloat32(sd, source);
            var weights = new MaeWeights(source, format, floats, resolved, contents.Extras, args);
            var kept = new HashSet<Tensor>(floats.Values, ReferenceEqualityComparer.Instance);
            foreach (var t in contents.Tensors.Values)
                if (!kept.Contains(t)) t.Dispose();                   // Hugging Face q/k/v, fused into qkv
            sd = null;
            return weights;
        }
        catch
        {
            foreach (var t in contents.Tensors.Values) t.Dispose();
            if (sd is not null) foreach (var t in sd.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>What a weights file (or Hugging Face folder) says about itself — format, kind, parameter shapes, an
    /// official checkpoint's <c>epoch</c> and typed <c>args</c>, a config file beside it — without loading a tensor.
    /// The file is read under <paramref name="limits"/> as <see cref="Read"/> reads it (same pickle allow-list and bounds).</summary>
    /// <exception cref="MaeModelFileException">The file is corrupt, hostile or over a limit; the message names it.</exception>
    public static MaeWeightFileInfo ReadInfo(string path, MaeLoadLimits? limits = null)
    {
        if (path is null) throw new ArgumentNullException(nameof(path));
        limits = (limits ?? MaeLoadLimits.Default).Validate();
        var (file, hfConfig, ourConfig) = Locate(path);
        var description = WeightFiles.Describe(file, limits);
        var extras = description.Extras;
        bool huggingFace = WeightNames.LooksLikeHuggingFace(
            description.Shapes.Keys.Select(k => k.StartsWith("module.", StringComparison.Ordinal) ? k["module.".Length..] : k));
        MaeConfig? config = null;
        MaeWeightsFileFormat format;
        if (huggingFace)
        {
            format = MaeWeightsFileFormat.HuggingFace;
            if (File.Exists(hfConfig)) config = ConfigInference.FromHuggingFace(hfConfig, limits);
        }
        else if (File.Exists(ourConfig) && ConfigInference.FromOurJson(ourConfig, limits) is { } ours)
            (format, config) = (file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? MaeWeightsFileFormat.Ours : MaeWeightsFileFormat.OfficialPth, ours);
        else format = file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? MaeWeightsFileFormat.TimmSafetensors : MaeWeightsFileFormat.OfficialPth;
        int? epoch = extras.GetValueOrDefault("epoch") switch
        {
            null => null,
            long e when e is >= int.MinValue and <= int.MaxValue => (int)e,
            var e => throw new MaeModelFileException($"'{path}': 'epoch' is {e} ({e.GetType().Name}), not a 32-bit integer.", path, "epoch"),
        };
        return new MaeWeightFileInfo
        {
            Path = file, Format = format, Kind = WeightNames.KindOf(description.Shapes.Keys), Shapes = description.Shapes,
            Epoch = epoch, Args = MaeTrainingArgs.From(extras.GetValueOrDefault("args"), path), Config = config,
            OtherEntries = extras.Keys.Where(k => k is not ("args" or "epoch")).ToList(),
        };
    }

    /// <summary>Loads a full MAE (encoder + decoder). Position tables are interpolated when
    /// <paramref name="imageSize"/> gives another grid than the file's.</summary>
    public static MaskedAutoencoder LoadMaskedAutoencoder(string path, MaeConfig? config = null, string? preset = null, int? imageSize = null,
                                                          MaeLoadLimits? limits = null, MaeHeadCounts? heads = null)
    {
        using var weights = Read(path, config, preset, limits, heads);
        if (weights.Kind != MaeWeightsKind.Full)
            throw new MaeModelFileException(
                $"'{path}' holds {Describe(weights.Kind)}, not a full MAE with a decoder; load it with LoadEncoder{(weights.Kind == MaeWeightsKind.FineTuned ? " or LoadClassifier" : "")}.");
        var model = new MaskedAutoencoder(Resize(weights.Config, imageSize));
        LoadInto(model, weights);
        return model;
    }

    /// <summary>Loads the encoder (feature extractor) from a full or encoder-only file; a decoder is ignored.</summary>
    public static MaeEncoder LoadEncoder(string path, MaeConfig? config = null, string? preset = null, int? imageSize = null,
                                         MaeLoadLimits? limits = null, MaeHeadCounts? heads = null)
    {
        using var weights = Read(path, config, preset, limits, heads);
        if (weights.Kind == MaeWeightsKind.FineTuned && weights.GlobalPool)
            throw new MaeModelFileException(
                $"'{path}' is a fine-tuned classifier with global pooling (fc_norm, no final norm); load it with LoadClassifier, " +
                "whose ForwardFeatures gives the pooled features.");
        var encoder = new MaeEncoder(Resize(weights.Config, imageSize));
        LoadInto(encoder, weights);
        return encoder;
    }

    /// <summary>Loads a fine-tuned classifier, or starts one from pre-trained weights (new fc_norm and head, and the
    /// pre-training <c>norm</c> dropped under global pooling, exactly as main_finetune.py does).</summary>
    public static VitClassifier LoadClassifier(string path, int? numClasses = null, bool? globalPool = null,
                                               MaeConfig? config = null, string? preset = null, int? imageSize = null,
                                               MaeLoadLimits? limits = null, MaeHeadCounts? heads = null)
    {
        using var weights = Read(path, config, preset, limits, heads);
        bool fineTuned = weights.Kind == MaeWeightsKind.FineTuned;
        int classes = numClasses ?? weights.NumClasses
            ?? throw new ArgumentException($"'{path}' has no classification head; pass numClasses.", nameof(numClasses));
        bool pool = globalPool ?? (fineTuned ? weights.GlobalPool : true);
        var model = new VitClassifier(Resize(weights.Config, imageSize), classes, pool);
        LoadInto(model, weights);
        return model;
    }

    /// <summary>A model config from a JSON file: the one <see cref="Save"/> writes beside the weights (<c>name.json</c>), a
    /// Hugging Face ViTMAE <c>config.json</c>, or a <see cref="MaeConfig"/> serialised with its own property names. A key
    /// the format does not know is a <see cref="MaeModelFileException"/> naming it (never a silent default).</summary>
    public static MaeConfig ReadConfig(string path, MaeLoadLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        return ConfigInference.FromAnyJson(path, (limits ?? MaeLoadLimits.Default).Validate()).Validate();
    }

    /// <summary>Writes <paramref name="model"/>'s weights as safetensors with the official names (pos tables
    /// included, as the official state dicts have them) and its config as JSON beside it (<c>name.json</c>). Both are
    /// written to temporary files first and renamed into place.</summary>
    public static void Save(nn.Module model, string path)
    {
        var config = model switch
        {
            MaskedAutoencoder m => m.Config, MaeEncoder e => e.Config, VitClassifier v => v.Config,
            _ => throw new ArgumentException($"Expected a MaskedAutoencoder, MaeEncoder or VitClassifier; got {model?.GetType().Name ?? "null"}.", nameof(model)),
        };
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = NewDisposeScope();
        foreach (var (name, tensor) in model.state_dict())
            sd[name] = tensor.detach().to(float32).cpu().contiguous();
        AtomicFile.Write(full, stream => Safetensors.SaveStateDict(stream, sd, leaveOpen: true));
        AtomicFile.Write(Path.ChangeExtension(full, ".json"), stream =>
        {
            using var writer = new StreamWriter(stream, leaveOpen: true);
            writer.Write(ConfigInference.ToOurJson(config));
        });
    }

    // ----------------------------------------------------------------------------------------------------------

    static string Describe(MaeWeightsKind kind) => kind switch
    {
        MaeWeightsKind.EncoderOnly => "an encoder only",
        MaeWeightsKind.FineTuned => "a fine-tuned classifier",
        _ => "a full MAE",
    };

    static MaeConfig Resize(MaeConfig config, int? imageSize)
        => imageSize is int size ? (config with { ImageSize = size }).Validate() : config;

    /// <summary>The weights file of <paramref name="path"/> (a Hugging Face folder's model.safetensors or
    /// pytorch_model.bin), the Hugging Face config.json beside it and our name.json.</summary>
    static (string File, string HfConfig, string OurConfig) Locate(string path)
    {
        string file = path;
        if (Directory.Exists(path))
        {
            file = new[] { "model.safetensors", "pytorch_model.bin" }.Select(f => Path.Combine(path, f)).FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException($"Folder '{path}' has neither model.safetensors nor pytorch_model.bin.");
        }
        string dir = Path.GetDirectoryName(Path.GetFullPath(file))!;
        return (file, Path.Combine(dir, "config.json"), Path.ChangeExtension(file, ".json"));
    }

    static void CheckHeads(MaeHeadCounts? heads, MaeConfig? config)
    {
        if (heads is not { } h) return;
        if (config is not null)
            throw new ArgumentException("Give head counts either in the config or as heads, not both.", nameof(heads));
        if (h.NumHeads < 1 || h.DecoderNumHeads is < 1)
            throw new ArgumentOutOfRangeException(nameof(heads), h, $"Head counts must be positive; got {h}.");
    }

    /// <summary>The architecture of a file without a config file: sizes from the shapes, head counts from
    /// <paramref name="heads"/>, the preset or <c>args.model</c>, the loss target from <c>args.norm_pix_loss</c>
    /// (models_mae.py's default, off, when the file does not say); <c>args.input_size</c> must be the size the
    /// position table was made for.</summary>
    static MaeConfig FromShapesAndArgs(IReadOnlyDictionary<string, long[]> shapes, MaeConfig? preset, MaeHeadCounts? heads,
                                       MaeTrainingArgs? args, string source, MaeLoadLimits limits)
    {
        var config = ConfigInference.Infer(shapes, preset ?? args?.ModelPreset, heads, source, limits);
        if (args?.InputSize is int size && size != config.ImageSize)
            throw new MaeModelFileException(
                $"'{source}' contradicts itself: args.input_size is {size} but its pos_embed holds a {config.GridSize}×{config.GridSize} grid of " +
                $"{config.PatchSize}-px patches ({config.ImageSize} px).", source, "args");
        return config with { NormPixLoss = args?.NormPixLoss ?? false };
    }

    static Dictionary<string, Tensor> ToFloat32(Dictionary<string, Tensor> sd, string source)
    {
        foreach (var (key, t) in sd)
            if (!t.is_floating_point())
                throw new MaeModelFileException($"'{source}': tensor '{key}' has dtype {t.dtype}; expected a floating-point tensor (float32, float16, bfloat16 or float64).", source, key);
        var result = new Dictionary<string, Tensor>(sd.Count, StringComparer.Ordinal);
        foreach (var (key, t) in sd)
        {
            if (t.dtype == ScalarType.Float32) result[key] = t;
            else { result[key] = t.to(float32); t.Dispose(); }
        }
        return result;
    }

    /// <summary>Copies <paramref name="weights"/> into <paramref name="module"/> by name, as <see cref="WeightNames.ForModel"/>
    /// selects them. Every missing key, unexpected key and shape difference is collected and reported together.</summary>
    static void LoadInto(nn.Module module, MaeWeights weights)
    {
        using var scope = NewDisposeScope();
        var selection = WeightNames.ForModel(module, weights.StateDict);
        if (!selection.Fits)
        {
            var lines = new List<string> { $"'{weights.Source}' does not fit the model ({module.GetType().Name}, {Summary(ConfigOf(module))}):" };
            if (selection.Missing.Count > 0) lines.Add($"  missing keys ({selection.Missing.Count}): {string.Join(", ", selection.Missing)}");
            if (selection.Unexpected.Count > 0) lines.Add($"  unexpected keys ({selection.Unexpected.Count}): {string.Join(", ", selection.Unexpected)}");
            if (selection.ShapeDifferences.Count > 0) lines.Add($"  shape differences ({selection.ShapeDifferences.Count}): {string.Join("; ", selection.ShapeDifferences)}");
            throw new MaeModelFileException(string.Join(Environment.NewLine, lines));
        }
        var target = module.state_dict();
        using (no_grad())
            foreach (var (key, value) in selection.Values) target[key].copy_(value);
    }

    static MaeConfig ConfigOf(nn.Module m) => m switch
    {
        MaskedAutoencoder a => a.Config, MaeEncoder e => e.Config, VitClassifier v => v.Config, _ => new MaeConfig(),
    };

    static string Summary(MaeConfig c)
        => $"{c.ImageSize}px/p{c.PatchSize}/{c.InChannels}ch, encoder {c.EmbedDim}×{c.Depth}×{c.NumHeads}h, decoder {c.DecoderEmbedDim}×{c.DecoderDepth}×{c.DecoderNumHeads}h";
}
