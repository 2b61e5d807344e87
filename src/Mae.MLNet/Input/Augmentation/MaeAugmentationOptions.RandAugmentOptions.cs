using System.Globalization;
using System.Text.RegularExpressions;

namespace Mae.MLNet.Input;

public sealed partial class MaeAugmentationOptions
{
    /// <summary>
    /// timm's RandAugment (<c>rand_augment_transform</c>), which the MAE fine-tuning recipe uses as
    /// <c>--aa rand-m9-mstd0.5-inc1</c> (the default here): for each image, <see cref="Layers"/> ops drawn uniformly with
    /// replacement from the 15 of timm's list (AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd,
    /// Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel, TranslateYRel), each applied with
    /// <see cref="Probability"/>, at a magnitude drawn from N(<see cref="Magnitude"/>, <see cref="MagnitudeStd"/>²) clipped
    /// to [0, <see cref="MagnitudeMax"/>] and mapped to the op's argument by timm's level functions (the "increasing"
    /// ones with <see cref="Increasing"/>), with signs drawn for the geometric and enhance ops. Applied to the 8-bit crop
    /// after the flip, before ToTensor / Normalize, as timm's <c>create_transform</c> orders it; geometric ops fill with
    /// round(255 · mean) of the normalisation and resample bicubic, as the reference's <c>build_transform</c> asks.
    /// </summary>
    public sealed class RandAugmentOptions
    {
        /// <summary>Ops per image (<c>n</c>). Default 2.</summary>
        public int Layers { get; set; } = 2;
        /// <summary>Mean magnitude on timm's 0–10 scale (<c>m</c>). Default 9.</summary>
        public double Magnitude { get; set; } = 9;
        /// <summary>Standard deviation of the magnitude (<c>mstd</c>); 0 = fixed; infinity = uniform in [0, Magnitude]. Default 0.5.</summary>
        public double MagnitudeStd { get; set; } = 0.5;
        /// <summary>Upper clip of the drawn magnitude (<c>mmax</c>). Default 10.</summary>
        public double MagnitudeMax { get; set; } = 10;
        /// <summary>Probability of applying each drawn op (<c>p</c>). Default 0.5.</summary>
        public double Probability { get; set; } = 0.5;
        /// <summary>timm's "increasing" op set (<c>inc1</c>): Posterize, Solarize and the enhance ops get stronger with the
        /// magnitude. Default true.</summary>
        public bool Increasing { get; set; } = true;

        /// <summary>The reference's <c>rand-m9-mstd0.5-inc1</c>.</summary>
        public static RandAugmentOptions Reference => new();

        /// <summary>Parses a timm config string: <c>rand</c> then dash-separated <c>m</c>, <c>n</c>, <c>p</c>, <c>mstd</c>,
        /// <c>mmax</c>, <c>inc</c> sections (e.g. <c>rand-m9-mstd0.5-inc1</c>, <c>rand-m7-n3</c>); the defaults of the rest
        /// are timm's (m 10, n 2, p 0.5, mstd 0, inc 0). Throws an <see cref="ArgumentException"/> naming the bad section.</summary>
        public static RandAugmentOptions Parse(string config)
        {
            ArgumentNullException.ThrowIfNull(config);
            var parts = config.Split('-');
            if (parts[0] != "rand")
                throw new ArgumentException($"A RandAugment config starts with \"rand\" (e.g. rand-m9-mstd0.5-inc1); got \"{config}\".", nameof(config));
            var o = new RandAugmentOptions { Magnitude = 10, MagnitudeStd = 0, Increasing = false };
            foreach (var part in parts.Skip(1))
            {
                var m = Regex.Match(part, @"^([a-z]+)(\d.*)$");
                if (!m.Success || !double.TryParse(m.Groups[2].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
                    throw new ArgumentException($"RandAugment config \"{config}\": section \"{part}\" is not a key (m, n, p, mstd, mmax, inc) followed by a number.", nameof(config));
                switch (m.Groups[1].Value)
                {
                    case "m": o.Magnitude = v; break;
                    case "n": o.Layers = (int)v; break;
                    case "p": o.Probability = v; break;
                    case "mstd": o.MagnitudeStd = v > 100 ? double.PositiveInfinity : v; break;
                    case "mmax": o.MagnitudeMax = v; break;
                    case "inc": o.Increasing = v != 0; break;
                    default:
                        throw new ArgumentException($"RandAugment config \"{config}\": unknown section \"{part}\"; expected m, n, p, mstd, mmax or inc (timm's weighted op sets, \"t…\", are not supported).", nameof(config));
                }
            }
            return o.Validate();
        }

        /// <summary>The timm config string of these options (e.g. <c>rand-m9-n2-p0.5-mstd0.5-mmax10-inc1</c>).</summary>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"rand-m{Magnitude}-n{Layers}-p{Probability}-mstd{(double.IsPositiveInfinity(MagnitudeStd) ? 101 : MagnitudeStd)}-mmax{MagnitudeMax}-inc{(Increasing ? 1 : 0)}");

        /// <summary>Checks every setting; returns this instance.</summary>
        public RandAugmentOptions Validate()
        {
            static ArgumentOutOfRangeException Bad(string name, object value, string rule) => new(name, value, $"RandAugment {name} must be {rule}; got {value}.");
            if (Layers < 1 || Layers > 16) throw Bad(nameof(Layers), Layers, "between 1 and 16");
            if (!(Magnitude >= 0 && double.IsFinite(Magnitude))) throw Bad(nameof(Magnitude), Magnitude, "a finite number ≥ 0");
            if (!(MagnitudeStd >= 0)) throw Bad(nameof(MagnitudeStd), MagnitudeStd, "≥ 0 (infinity: uniform)");
            if (!(MagnitudeMax > 0 && double.IsFinite(MagnitudeMax))) throw Bad(nameof(MagnitudeMax), MagnitudeMax, "a finite number > 0");
            if (!(Probability >= 0 && Probability <= 1)) throw Bad(nameof(Probability), Probability, "in [0, 1]");
            return this;
        }

        /// <summary>A copy.</summary>
        public RandAugmentOptions Clone() => (RandAugmentOptions)MemberwiseClone();
    }
}
