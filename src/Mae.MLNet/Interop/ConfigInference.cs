using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Mae.MLNet.Model;

namespace Mae.MLNet.Interop;

/// <summary>Architecture from tensor shapes (widths, depths, patch, grid, MLP ratio) plus what shapes cannot tell
/// (head counts) from a preset, a config file, or the public models' conventions. Numbers that come from a file —
/// parameter names, a config JSON — are untrusted: <see cref="CheckAgainstTensors"/> holds them against the limits
/// and against the tensors actually present before any module is built, so a model is never larger than the
/// weights the file really holds.</summary>
internal static partial class ConfigInference
{
    /// <summary>Head counts of the public ViTs by width: ViT-Ti 192/3, S 384/6, B 768/12, L 1024/16, H 1280/16;
    /// the MAE decoder 512/16.</summary>
    static readonly Dictionary<long, int> KnownHeads = new() { [192] = 3, [384] = 6, [768] = 12, [1024] = 16, [1280] = 16, [512] = 16 };

    /// <summary>Sizes from the shapes; head counts from <paramref name="heads"/>, else from <paramref name="hint"/> where
    /// its widths match, else the public ViTs' convention. Nothing else is taken from the hint: the loss target and
    /// LayerNorm epsilon are what the file says (the caller's business), not a preset's.</summary>
    public static MaeConfig Infer(IReadOnlyDictionary<string, long[]> shapes, MaeConfig? hint, MaeWeightFile.HeadCounts? heads, string source, MaeLoadLimits limits)
    {
        long[] Need(string key) => shapes.TryGetValue(key, out var s) ? s
            : throw new MaeModelFileException($"'{source}' has no '{key}', so its architecture cannot be inferred; pass a config.", source, key);
        var proj = Need("patch_embed.proj.weight");
        if (proj.Length != 4 || proj[2] != proj[3] || proj.Any(v => v < 1 || v > limits.MaxWidth))
            throw new MaeModelFileException($"'{source}': patch_embed.proj.weight should be [D, C, p, p] (each at most {limits.MaxWidth}); got {Shape(proj)}.", source, "patch_embed.proj.weight");
        int d = (int)proj[0], c = (int)proj[1], p = (int)proj[2];
        var pos = Need("pos_embed");
        if (pos.Length != 3 || pos[1] < 2)
            throw new MaeModelFileException($"'{source}': pos_embed should be [1, 1 + L, D]; got {Shape(pos)}.", source, "pos_embed");
        long patches = pos[1] - 1;
        long grid = (long)Math.Round(Math.Sqrt(patches));
        if (grid * grid != patches) throw new MaeModelFileException($"'{source}': pos_embed has {patches} patch rows, not a square grid.", source, "pos_embed");
        if (grid * p > limits.MaxWidth)
            throw new MaeModelFileException($"'{source}': pos_embed implies {grid * p}-px images, more than MaeLoadLimits.MaxWidth ({limits.MaxWidth}).", source, "pos_embed");
        int depth = CountBlocks(shapes.Keys, "blocks", source, limits);
        if (depth == 0) throw new MaeModelFileException($"'{source}' has no encoder blocks (blocks.N.*).", source, null);
        var fc1 = Need("blocks.0.mlp.fc1.weight");
        if (fc1.Length != 2 || fc1[0] < 1) throw new MaeModelFileException($"'{source}': blocks.0.mlp.fc1.weight should be [hidden, D]; got {Shape(fc1)}.", source, "blocks.0.mlp.fc1.weight");
        double mlpRatio = fc1[0] / (double)d;

        var config = new MaeConfig
        {
            ImageSize = (int)(grid * p), PatchSize = p, InChannels = c, EmbedDim = d, Depth = depth, MlpRatio = mlpRatio,
            NumHeads = heads?.NumHeads ?? (hint?.EmbedDim == d ? hint.NumHeads : Heads(d, "encoder", source)),
        };
        if (shapes.TryGetValue("decoder_embed.weight", out var decEmbed))
        {
            if (decEmbed.Length != 2 || decEmbed[0] < 1 || decEmbed[0] > limits.MaxWidth)
                throw new MaeModelFileException($"'{source}': decoder_embed.weight should be [decoder D, D]; got {Shape(decEmbed)}.", source, "decoder_embed.weight");
            int dd = (int)decEmbed[0];
            config = config with
            {
                DecoderEmbedDim = dd,
                DecoderDepth = CountBlocks(shapes.Keys, "decoder_blocks", source, limits),
                DecoderNumHeads = heads?.DecoderNumHeads ?? (hint?.DecoderEmbedDim == dd ? hint.DecoderNumHeads : Heads(dd, "decoder", source)),
            };
        }
        return config;
    }

    /// <summary>
    /// Refuses <paramref name="config"/> unless every tensor it makes the model allocate is present in the file with
    /// the shape it implies: the patch embedding, the position table, and the four weight matrices of each encoder
    /// block (and, with <paramref name="decoder"/>, of the decoder), plus <c>head.weight</c> when
    /// <paramref name="numClasses"/> is given. Checked before any module is built, so a config (or a parameter name
    /// like <c>blocks.20000.norm1.weight</c>) cannot size a model beyond the weights the file holds.
    /// </summary>
    public static void CheckAgainstTensors(MaeConfig config, IReadOnlyDictionary<string, long[]> shapes, string source,
                                           MaeLoadLimits limits, bool decoder, int? numClasses = null)
    {
        var problems = new List<string>();
        void Limit(long value, long max, string what, string limit)
        {
            if (value > max) problems.Add($"{what} {value} is more than MaeLoadLimits.{limit} ({max})");
        }
        Limit(config.Depth, limits.MaxLayers, "depth", nameof(MaeLoadLimits.MaxLayers));
        Limit(config.EmbedDim, limits.MaxWidth, "embed_dim", nameof(MaeLoadLimits.MaxWidth));
        Limit(config.ImageSize, limits.MaxWidth, "img_size", nameof(MaeLoadLimits.MaxWidth));
        Limit((long)(config.EmbedDim * Math.Max(config.MlpRatio, 0)), limits.MaxWidth, "MLP width", nameof(MaeLoadLimits.MaxWidth));
        if (decoder)
        {
            Limit(config.DecoderDepth, limits.MaxLayers, "decoder_depth", nameof(MaeLoadLimits.MaxLayers));
            Limit(config.DecoderEmbedDim, limits.MaxWidth, "decoder_embed_dim", nameof(MaeLoadLimits.MaxWidth));
            Limit((long)(config.DecoderEmbedDim * Math.Max(config.MlpRatio, 0)), limits.MaxWidth, "decoder MLP width", nameof(MaeLoadLimits.MaxWidth));
        }
        if (numClasses is int k) Limit(k, limits.MaxWidth, "number of classes", nameof(MaeLoadLimits.MaxWidth));
        if (problems.Count == 0)
        {
            try { config.Validate(); }
            catch (ArgumentException e) { problems.Add(e.Message); }
        }
        if (problems.Count == 0)
        {
            long d = config.EmbedDim, grid = config.GridSize, p = config.PatchSize, h = config.MlpHiddenDim;
            void Expect(string key, params long[] shape)
            {
                if (!shapes.TryGetValue(key, out var actual)) problems.Add($"'{key}' is missing (expected {Shape(shape)})");
                else if (!actual.SequenceEqual(shape)) problems.Add($"'{key}' is {Shape(actual)}, expected {Shape(shape)}");
            }
            void Blocks(string prefix, int depth, long width, long hidden)
            {
                int present = CountBlocks(shapes.Keys, prefix, source, limits);
                if (present != depth) problems.Add($"{depth} {prefix} are configured but the file holds {present}");
                for (int i = 0; i < depth && problems.Count < 20; i++)
                {
                    Expect($"{prefix}.{i}.attn.qkv.weight", 3 * width, width);
                    Expect($"{prefix}.{i}.attn.proj.weight", width, width);
                    Expect($"{prefix}.{i}.mlp.fc1.weight", hidden, width);
                    Expect($"{prefix}.{i}.mlp.fc2.weight", width, hidden);
                }
            }
            Expect("patch_embed.proj.weight", d, config.InChannels, p, p);
            Expect("pos_embed", 1, grid * grid + 1, d);
            Blocks("blocks", config.Depth, d, h);
            if (decoder)
            {
                long dd = config.DecoderEmbedDim;
                Expect("decoder_embed.weight", dd, d);
                Expect("decoder_pos_embed", 1, grid * grid + 1, dd);
                Blocks("decoder_blocks", config.DecoderDepth, dd, config.DecoderMlpHiddenDim);
                Expect("decoder_pred.weight", config.PatchDim, dd);
            }
            if (numClasses is int classes) Expect("head.weight", classes, d);
        }
        if (problems.Count > 0)
            throw new MaeModelFileException(
                $"'{source}': the architecture its names or config describe does not match the tensors it holds, so no model is built: " +
                string.Join("; ", problems.Take(20)) + (problems.Count > 20 ? $"; … ({problems.Count - 20} more)" : "") + ".", source, null);
    }

    public static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    static int Heads(long width, string what, string source)
        => KnownHeads.TryGetValue(width, out int h) ? h
         : throw new MaeModelFileException(
               $"'{source}': the {what} is {width} wide, not a public ViT width, and head counts cannot be read from weights. " +
               "Pass the head counts (heads: new MaeWeightFile.HeadCounts(numHeads, decoderNumHeads)), a preset name or a whole MaeConfig.", source, null);

    [GeneratedRegex(@"^(blocks|decoder_blocks)\.([0-9]+)\.")] private static partial Regex BlockKey();

    /// <summary>The number of <paramref name="prefix"/>.N blocks: indices must run 0 … N−1 without gaps and stay
    /// under <see cref="MaeLoadLimits.MaxLayers"/> (an index like 99999999999999999999 is refused, not parsed).</summary>
    static int CountBlocks(IEnumerable<string> keys, string prefix, string source, MaeLoadLimits limits)
    {
        var seen = new HashSet<int>();
        foreach (var key in keys)
        {
            var m = BlockKey().Match(key);
            if (!m.Success || m.Groups[1].Value != prefix) continue;
            string digits = m.Groups[2].Value;
            if (digits.Length > 9 || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int index) || index >= limits.MaxLayers)
                throw new MaeModelFileException(
                    $"'{source}': parameter '{Shorten(key)}' names block {Shorten(digits)}, beyond MaeLoadLimits.MaxLayers ({limits.MaxLayers}).", source, key);
            seen.Add(index);
        }
        for (int i = 0; i < seen.Count; i++)
            if (!seen.Contains(i))
                throw new MaeModelFileException(
                    $"'{source}': {prefix} indices must run 0 … N−1 without gaps; {prefix}.{i} is missing but {prefix}.{seen.Max()} is present.", source, $"{prefix}.{seen.Max()}");
        return seen.Count;
    }

    static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "…";

    /// <summary>Reads a small JSON config file (at most <see cref="MaeLoadLimits.MaxConfigFileBytes"/>).</summary>
    static JsonDocument ReadJson(string path, MaeLoadLimits limits)
    {
        byte[] bytes;
        using (var stream = WeightFiles.OpenFile(path, 1))
        {
            long length = stream.Length;
            if (length > limits.MaxConfigFileBytes)
                throw new MaeModelFileException($"Config file '{path}' is {length} bytes, more than MaeLoadLimits.MaxConfigFileBytes ({limits.MaxConfigFileBytes}).", path, null);
            bytes = new byte[length];
            stream.ReadExactly(bytes);
        }
        try { return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw new MaeModelFileException($"Config file '{path}' is not valid JSON: {e.Message}", path, null, e); }
    }

    static MaeModelFileException ConfigError(string path, string key, string why)
        => new($"Config file '{path}': '{key}' {why}.", path, key);

    static int Int(JsonElement r, string key, string path, int? fallback = null)
    {
        if (!r.TryGetProperty(key, out var v))
            return fallback ?? throw ConfigError(path, key, "is missing");
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw ConfigError(path, key, $"is {Raw(v)}, not a 32-bit integer");
    }

    static double Double(JsonElement r, string key, string path, double? fallback = null)
    {
        if (!r.TryGetProperty(key, out var v))
            return fallback ?? throw ConfigError(path, key, "is missing");
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw ConfigError(path, key, $"is {Raw(v)}, not a number");
    }

    static bool Bool(JsonElement r, string key, string path, bool? fallback = null)
    {
        if (!r.TryGetProperty(key, out var v))
            return fallback ?? throw ConfigError(path, key, "is missing");
        return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw ConfigError(path, key, $"is {Raw(v)}, not true or false") };
    }

    static string? String(JsonElement r, string key, string path)
    {
        if (!r.TryGetProperty(key, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw ConfigError(path, key, $"is {Raw(v)}, not a string");
    }

    static string Raw(JsonElement v) => v.GetRawText() is var s && s.Length > 40 ? s[..40] + "…" : v.GetRawText();

    static JsonElement Root(JsonDocument doc, string path)
        => doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement
         : throw new MaeModelFileException($"Config file '{path}' is not a JSON object.", path, null);

    /// <summary>Hugging Face ViTMAE <c>config.json</c>.</summary>
    public static MaeConfig FromHuggingFace(string path, MaeLoadLimits limits)
    {
        using var doc = ReadJson(path, limits);
        var r = Root(doc, path);
        string act = String(r, "hidden_act", path) ?? "gelu";
        if (act != "gelu") throw ConfigError(path, "hidden_act", $"is '{act}'; only 'gelu' is supported");
        if (!Bool(r, "qkv_bias", path, true)) throw ConfigError(path, "qkv_bias", "is false; the MAE uses qkv bias");
        int hidden = Int(r, "hidden_size", path), intermediate = Int(r, "intermediate_size", path);
        if (hidden < 1) throw ConfigError(path, "hidden_size", $"is {hidden}");
        if (r.TryGetProperty("decoder_intermediate_size", out _) && r.TryGetProperty("decoder_hidden_size", out _)
            && (long)Int(r, "decoder_intermediate_size", path) * hidden != (long)intermediate * Int(r, "decoder_hidden_size", path))
            throw ConfigError(path, "decoder_intermediate_size", "gives another MLP ratio than the encoder's; Mae.MLNet uses one mlp_ratio for both");
        return new MaeConfig
        {
            ImageSize = Int(r, "image_size", path), PatchSize = Int(r, "patch_size", path), InChannels = Int(r, "num_channels", path, 3),
            EmbedDim = hidden, Depth = Int(r, "num_hidden_layers", path), NumHeads = Int(r, "num_attention_heads", path),
            MlpRatio = intermediate / (double)hidden,
            DecoderEmbedDim = Int(r, "decoder_hidden_size", path), DecoderDepth = Int(r, "decoder_num_hidden_layers", path),
            DecoderNumHeads = Int(r, "decoder_num_attention_heads", path),
            NormPixLoss = Bool(r, "norm_pix_loss", path, false),
            LayerNormEps = Double(r, "layer_norm_eps", path, 1e-12),
        };
    }

    /// <summary>Our own config JSON (written beside saved weights), with the official code's argument names; null
    /// when the file is JSON of another kind (no <c>embed_dim</c>).</summary>
    public static MaeConfig? FromOurJson(string path, MaeLoadLimits limits)
    {
        using var doc = ReadJson(path, limits);
        var r = Root(doc, path);
        if (!r.TryGetProperty("embed_dim", out _)) return null;
        return new MaeConfig
        {
            ImageSize = Int(r, "img_size", path), PatchSize = Int(r, "patch_size", path), InChannels = Int(r, "in_chans", path),
            EmbedDim = Int(r, "embed_dim", path), Depth = Int(r, "depth", path), NumHeads = Int(r, "num_heads", path),
            DecoderEmbedDim = Int(r, "decoder_embed_dim", path), DecoderDepth = Int(r, "decoder_depth", path),
            DecoderNumHeads = Int(r, "decoder_num_heads", path), MlpRatio = Double(r, "mlp_ratio", path),
            NormPixLoss = Bool(r, "norm_pix_loss", path), LayerNormEps = Double(r, "layer_norm_eps", path),
        };
    }

    /// <summary>A config file in any of the formats this library reads: ours (<see cref="ToOurJson"/>'s names), Hugging
    /// Face's config.json, or <see cref="MaeConfig"/>'s own property names. A property the format does not know is an
    /// error naming it, so a misspelt key never falls back to a default silently.</summary>
    public static MaeConfig FromAnyJson(string path, MaeLoadLimits limits)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file '{path}' does not exist.", path);
        string[] keys;
        using (var doc = ReadJson(path, limits)) keys = Root(doc, path).EnumerateObject().Select(p => p.Name).ToArray();
        if (keys.Contains("embed_dim"))
        {
            string[] known = ["img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "decoder_embed_dim", "decoder_depth",
                              "decoder_num_heads", "mlp_ratio", "norm_pix_loss", "layer_norm_eps"];
            if (keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
                throw ConfigError(path, unknown, $"is not a key of Mae.MLNet's config files (expected {string.Join(", ", known)})");
            return FromOurJson(path, limits)!;
        }
        if (keys.Contains("hidden_size")) return FromHuggingFace(path, limits);
        var properties = typeof(MaeConfig).GetProperties().Where(p => p.CanWrite).Select(p => p.Name).ToArray();
        if (keys.FirstOrDefault(k => !properties.Contains(k)) is { } other)
            throw ConfigError(path, other, $"is not a MaeConfig property; expected Mae.MLNet's config file (as written beside the weights: embed_dim, depth, …), " +
                                           $"a Hugging Face config.json, or MaeConfig's properties ({string.Join(", ", properties)})");
        try { return JsonSerializer.Deserialize<MaeConfig>(File.ReadAllBytes(path)) ?? throw new MaeModelFileException($"Config file '{path}' holds null.", path, null); }
        catch (JsonException e) { throw new MaeModelFileException($"Config file '{path}' is not a valid MaeConfig: {e.Message}", path, e.Path, e); }
    }

    public static string ToOurJson(MaeConfig c) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["img_size"] = c.ImageSize, ["patch_size"] = c.PatchSize, ["in_chans"] = c.InChannels, ["embed_dim"] = c.EmbedDim,
        ["depth"] = c.Depth, ["num_heads"] = c.NumHeads, ["decoder_embed_dim"] = c.DecoderEmbedDim,
        ["decoder_depth"] = c.DecoderDepth, ["decoder_num_heads"] = c.DecoderNumHeads, ["mlp_ratio"] = c.MlpRatio,
        ["norm_pix_loss"] = c.NormPixLoss, ["layer_norm_eps"] = c.LayerNormEps,
    }, new JsonSerializerOptions { WriteIndented = true });
}
