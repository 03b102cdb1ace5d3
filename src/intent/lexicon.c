/* lexicon.c: the vocabularies of the built-in intent parser (see lexicon.h).
 *
 * The tables are data, grouped by kind. A word may appear under several
 * kinds ("sneaker" names a subject class and a thing; "gold" a colour and a
 * material); callers ask for the kind they expect at that place. The index
 * (entries sorted by their first word) is built once, on first use. */
#include "intent/lexicon.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { D2 = IT_DOMAIN_CHARACTER_2D, DP = IT_DOMAIN_PORTRAIT, DR = IT_DOMAIN_PRODUCT, DA = IT_DOMAIN_PAINTING, DN = -1 };

#define T(w, c, cat, d) {w, c, IT_LEX_THING, IT_LEXC_##cat, NULL, d}
#define TP(w, c, p, cat) {w, c, IT_LEX_THING, IT_LEXC_##cat, p, DN}
#define S(w, c, d) {w, c, IT_LEX_SCENE, IT_LEXC_NONE, NULL, d}
#define P(w, c) {w, c, IT_LEX_PROPERTY, IT_LEXC_NONE, NULL, DN}
#define V(w, c, p) {w, c, IT_LEX_VALUE, IT_LEXC_NONE, p, DN}
#define C(w, c, cat, d) {w, c, IT_LEX_CLASS, IT_LEXC_##cat, NULL, d}

static const it_lex_entry g_entries[] = {
    /* ---- body parts and looks (instance) ---- */
    T("face", "face", BODY, DN), T("faces", "face", BODY, DN),
    T("facial features", "face", BODY, DP), T("facial feature", "face", BODY, DP),
    T("features", "face", BODY, DN), T("facial identity", "face", BODY, DP),
    T("identity", "face", BODY, DN), T("likeness", "face", BODY, DP), T("facial structure", "face", BODY, DP),
T("head", "head", BODY, DN),
    T("eyes", "eyes", BODY, DN), T("eye", "eyes", BODY, DN), T("nose", "nose", BODY, DN),
    T("mouth", "mouth", BODY, DN), T("lips", "lips", BODY, DN), T("ears", "ears", BODY, DN),
    T("ear", "ears", BODY, DN), T("hair", "hair", BODY, DN), T("beard", "beard", BODY, DP),
    T("moustache", "moustache", BODY, DP), T("mustache", "moustache", BODY, DP),
    T("skin", "skin", BODY, DP), T("body", "body", BODY, DN), T("tail", "tail", BODY, D2),
    T("wings", "wings", BODY, D2), T("wing", "wings", BODY, D2), T("horns", "horns", BODY, D2),
    T("horn", "horns", BODY, D2), T("scales", "scales", BODY, D2), T("fur", "fur", BODY, DN),
    T("teeth", "teeth", BODY, DN), T("eyebrows", "eyebrows", BODY, DN), T("freckles", "freckles", BODY, DP),
    T("hands", "hands", BODY, DN), T("hand", "hands", BODY, DN), T("arms", "arms", BODY, DN),
    T("legs", "legs", BODY, DN), T("tattoo", "tattoo", BODY, DN), T("tattoos", "tattoo", BODY, DN),
    T("scar", "scar", BODY, DN), T("makeup", "makeup", BODY, DP), T("make-up", "makeup", BODY, DP),
    T("paws", "paws", BODY, DN), T("claws", "claws", BODY, DN), T("antennae", "antennae", BODY, D2),
    T("antenna", "antennae", BODY, D2), T("face marking", "face marking", BODY, D2),
    T("face markings", "face marking", BODY, D2), T("marking", "marking", BODY, D2),
    T("markings", "marking", BODY, D2), T("spots", "spots", BODY, DN), T("stripes", "stripes", BODY, DN),
    T("whiskers", "whiskers", BODY, DN), T("snout", "snout", BODY, DN), T("muzzle", "snout", BODY, DN),
    T("beak", "beak", BODY, DN), T("feathers", "feathers", BODY, DN), T("feather", "feathers", BODY, DN),
    T("smile", "smile", BODY, DN), T("tusk", "tusks", BODY, D2), T("teardrop", "teardrop", BODY, D2), T("tusks", "tusks", BODY, D2),
    T("war paint", "war paint", BODY, D2), T("face paint", "face paint", BODY, DN), T("braid", "braid", BODY, DN),
    T("braids", "braid", BODY, DN), T("pigtails", "pigtail", BODY, DN), T("pigtail", "pigtail", BODY, DN),
    T("ponytail", "ponytail", BODY, DN), T("bun", "bun", BODY, DN), T("fangs", "fangs", BODY, D2),
    T("fins", "fins", BODY, D2), T("mane", "mane", BODY, DN), T("knee", "knee", BODY, DN), T("fist", "fist", BODY, DN),
    T("foot", "feet", BODY, DN), T("feet", "feet", BODY, DN), T("palms", "hands", BODY, DN), T("arm", "arms", BODY, DN), T("wrinkles", "wrinkles", BODY, DP), T("build", "body", BODY, DN),
    T("physique", "body", BODY, DN), T("cheeks", "cheeks", BODY, DN), T("blush", "blush", BODY, D2),
    TP("hairstyle", "hair", "style", BODY), TP("hairstyles", "hair", "style", BODY),
    TP("haircut", "hair", "style", BODY), TP("hairdo", "hair", "style", BODY),
    TP("expression", "face", "expression", BODY), TP("expressions", "face", "expression", BODY),
    TP("facial expression", "face", "expression", BODY), TP("facial expressions", "face", "expression", BODY),
    TP("emotion", "face", "expression", BODY), TP("emotions", "face", "expression", BODY),
    TP("eye count", "eyes", "count", BODY), TP("number of eyes", "eyes", "count", BODY),
    TP("skin tone", "skin", "colour", BODY), TP("complexion", "skin", "colour", BODY),
    TP("age", "person", "age", BODY),

    /* ---- garments (instance) ---- */
    T("jacket", "jacket", GARMENT, DN), T("jackets", "jacket", GARMENT, DN), T("coat", "coat", GARMENT, DN),
    T("coats", "coat", GARMENT, DN), T("shirt", "shirt", GARMENT, DN), T("shirts", "shirt", GARMENT, DN),
    T("t-shirt", "t-shirt", GARMENT, DN), T("tshirt", "t-shirt", GARMENT, DN), T("blouse", "blouse", GARMENT, DN),
    T("dress", "dress", GARMENT, DN), T("dresses", "dress", GARMENT, DN), T("skirt", "skirt", GARMENT, DN),
    T("trousers", "trousers", GARMENT, DN), T("pants", "trousers", GARMENT, DN), T("jeans", "jeans", GARMENT, DN),
    T("shorts", "shorts", GARMENT, DN), T("hoodie", "hoodie", GARMENT, DN), T("sweater", "sweater", GARMENT, DN),
    T("jumper", "sweater", GARMENT, DN), T("cardigan", "cardigan", GARMENT, DN), T("suit", "suit", GARMENT, DN),
    T("uniform", "uniform", GARMENT, DN), T("outfit", "outfit", GARMENT, DN), T("outfits", "outfit", GARMENT, DN),
    T("clothing", "outfit", GARMENT, DN), T("clothes", "outfit", GARMENT, DN), T("costume", "outfit", GARMENT, DN),
    T("costumes", "outfit", GARMENT, DN), T("attire", "outfit", GARMENT, DN), T("garment", "outfit", GARMENT, DN),
    T("garments", "outfit", GARMENT, DN),
    T("armor", "armor", GARMENT, D2), T("armour", "armor", GARMENT, D2), T("helmet", "helmet", GARMENT, DN),
    T("cape", "cape", GARMENT, D2), T("cloak", "cloak", GARMENT, D2), T("robe", "robe", GARMENT, DN),
    T("kimono", "kimono", GARMENT, DN), T("vest", "vest", GARMENT, DN), T("tie", "tie", GARMENT, DN),
    T("necktie", "tie", GARMENT, DN), T("bow tie", "bow tie", GARMENT, DN), T("bowtie", "bow tie", GARMENT, DN),
    T("bow ties", "bow tie", GARMENT, DN), T("scarf", "scarf", GARMENT, DN), T("scarves", "scarf", GARMENT, DN),
    T("shoes", "shoes", GARMENT, DN), T("boots", "boots", GARMENT, DN), T("gloves", "gloves", GARMENT, DN),
    T("socks", "socks", GARMENT, DN), T("hat", "hat", GARMENT, DN), T("hats", "hat", GARMENT, DN),
    T("cap", "cap", GARMENT, DN), T("caps", "cap", GARMENT, DN), T("top hat", "top hat", GARMENT, DN),
    T("beanie", "beanie", GARMENT, DN), T("hood", "hood", GARMENT, DN), T("crown", "crown", GARMENT, DN),
    T("tiara", "tiara", GARMENT, DN), T("mask", "mask", GARMENT, DN), T("apron", "apron", GARMENT, DN),
    T("overalls", "overalls", GARMENT, DN), T("swimsuit", "swimsuit", GARMENT, DN),
    T("headwear", "hat", GARMENT, DN), T("headgear", "hat", GARMENT, DN), T("sleeves", "sleeves", GARMENT, DN),
    T("collar", "collar", GARMENT, DN), T("hoodies", "hoodie", GARMENT, DN),

    /* ---- accessories (instance) ---- */
    T("necklace", "necklace", ACCESSORY, DN), T("necklaces", "necklace", ACCESSORY, DN),
    T("pendant", "necklace", ACCESSORY, DN), T("earrings", "earrings", ACCESSORY, DN),
    T("earring", "earrings", ACCESSORY, DN), T("bracelet", "bracelet", ACCESSORY, DN),
    T("ring", "ring", ACCESSORY, DN), T("rings", "ring", ACCESSORY, DN), T("glasses", "glasses", ACCESSORY, DN),
    T("eyeglasses", "glasses", ACCESSORY, DN), T("spectacles", "glasses", ACCESSORY, DN),
    T("sunglasses", "sunglasses", ACCESSORY, DN), T("goggles", "goggles", ACCESSORY, D2),
    T("headband", "headband", ACCESSORY, DN), T("bag", "bag", ACCESSORY, DN), T("handbag", "bag", ACCESSORY, DN),
    T("backpack", "backpack", ACCESSORY, DN), T("belt", "belt", ACCESSORY, DN), T("badge", "badge", ACCESSORY, DN),
    T("jewelry", "jewelry", ACCESSORY, DN), T("jewellery", "jewelry", ACCESSORY, DN),
    T("piercing", "piercing", ACCESSORY, DN), T("piercings", "piercing", ACCESSORY, DN),
    T("hairpin", "hairpin", ACCESSORY, DN), T("hair clip", "hairpin", ACCESSORY, DN),
    T("bow", "bow", ACCESSORY, DN), T("ribbon", "ribbon", ACCESSORY, DN), T("leash", "leash", ACCESSORY, DN),
    T("umbrella", "umbrella", ACCESSORY, DN), T("watch", "watch", ACCESSORY, DN),
    T("wristwatch", "watch", ACCESSORY, DN), T("accessory", "accessory", ACCESSORY, DN),
    T("accessories", "accessory", ACCESSORY, DN), T("brooch", "brooch", ACCESSORY, DN),
    T("nose ring", "nose ring", ACCESSORY, DN), T("eye patch", "eye patch", ACCESSORY, DN),
    T("eyepatch", "eye patch", ACCESSORY, DN), T("monocle", "monocle", ACCESSORY, DN),
    T("stethoscope", "stethoscope", ACCESSORY, DN), T("lanyard", "lanyard", ACCESSORY, DN),

    /* ---- objects and product parts (instance) ---- */
    T("weapon", "weapon", OBJECT, DN), T("weapons", "weapon", OBJECT, DN), T("sword", "sword", OBJECT, D2),
    T("swords", "sword", OBJECT, D2), T("gun", "gun", OBJECT, DN), T("guns", "gun", OBJECT, DN),
    T("shield", "shield", OBJECT, D2), T("staff", "staff", OBJECT, D2), T("wand", "wand", OBJECT, D2),
    T("phone", "phone", OBJECT, DN), T("cigarette", "cigarette", OBJECT, DN), T("pipe", "pipe", OBJECT, DN),
    T("book", "book", OBJECT, DN), T("flower", "flower", OBJECT, DN), T("flowers", "flower", OBJECT, DN),
    T("logo", "logo", OBJECT, DR), T("logos", "logo", OBJECT, DR), T("label", "label", OBJECT, DR),
    T("labels", "label", OBJECT, DR), T("sole", "sole", OBJECT, DR), T("soles", "sole", OBJECT, DR),
    T("shoelaces", "shoelace", OBJECT, DR), T("shoelace", "shoelace", OBJECT, DR),
    T("laces", "shoelace", OBJECT, DR), T("lace", "shoelace", OBJECT, DR), T("handle", "handle", OBJECT, DR), T("lid", "lid", OBJECT, DR),
    T("strap", "strap", OBJECT, DR), T("straps", "strap", OBJECT, DR), T("buckle", "buckle", OBJECT, DR),
    T("screen", "screen", OBJECT, DR), T("button", "button", OBJECT, DR), T("buttons", "button", OBJECT, DR),
    T("cable", "cable", OBJECT, DR), T("cables", "cable", OBJECT, DR), T("cord", "cable", OBJECT, DR),
    T("wire", "cable", OBJECT, DR), T("packaging", "packaging", OBJECT, DR), T("package", "packaging", OBJECT, DR),
    T("box", "box", OBJECT, DR), T("text", "text", OBJECT, DN), T("lettering", "text", OBJECT, DN),
    T("caption", "text", OBJECT, DN), T("words", "text", OBJECT, DN), T("writing", "text", OBJECT, DN),
    T("watermark", "watermark", OBJECT, DN), T("watermarks", "watermark", OBJECT, DN),
    T("signature", "signature", OBJECT, DA), T("signatures", "signature", OBJECT, DA),
    T("frame", "frame", OBJECT, DA), T("frames", "frame", OBJECT, DA), T("border", "border", OBJECT, DN),
    T("borders", "border", OBJECT, DN), T("stand", "stand", OBJECT, DR), T("base", "base", OBJECT, DR),
    T("spout", "spout", OBJECT, DR), T("glaze", "glaze", OBJECT, DR), T("ear cushion", "ear cushion", OBJECT, DR),
    T("ear cushions", "ear cushion", OBJECT, DR), T("ear cups", "ear cushion", OBJECT, DR),
    T("wheels", "wheels", OBJECT, DR), T("wheel", "wheels", OBJECT, DR), T("lens", "lens", OBJECT, DR),
    T("keyboard", "keyboard", OBJECT, DR), T("case", "case", OBJECT, DR), T("trim", "trim", OBJECT, DR),
    T("stitching", "stitching", OBJECT, DR), T("zipper", "zipper", OBJECT, DR), T("pocket", "pocket", OBJECT, DN),
    T("pockets", "pocket", OBJECT, DN), T("sticker", "sticker", OBJECT, DR), T("stickers", "sticker", OBJECT, DR),
    T("price tag", "price tag", OBJECT, DR), T("tag", "tag", OBJECT, DR), T("barcode", "barcode", OBJECT, DR),
    T("reflections", "reflection", OBJECT, DR), T("reflection", "reflection", OBJECT, DR),
    T("shadow", "shadow", OBJECT, DN), T("shadows", "shadow", OBJECT, DN), T("steam", "steam", OBJECT, DR),
    T("spoon", "spoon", OBJECT, DR), T("saucer", "saucer", OBJECT, DR), T("straw", "straw", OBJECT, DR),
    T("cap of the bottle", "lid", OBJECT, DR), T("fire", "fire", OBJECT, DN), T("flames", "fire", OBJECT, DN),
    T("smoke", "smoke", OBJECT, DN), T("building", "building", OBJECT, DN), T("buildings", "building", OBJECT, DN),
    T("people", "person", OBJECT, DN), T("person", "person", OBJECT, DN), T("persons", "person", OBJECT, DN),
    T("humans", "person", OBJECT, DN), T("figures", "person", OBJECT, DN), T("figure", "person", OBJECT, DN),
    S("lines", "linework", DN), T("crowd", "person", OBJECT, DN),
    T("animals", "animal", OBJECT, DN), T("cars", "car", OBJECT, DN), T("vehicles", "car", OBJECT, DN),
    T("trees", "tree", OBJECT, DN), T("tree", "tree", OBJECT, DN), T("cup", "cup", OBJECT, DN),
    T("bottle", "bottle", OBJECT, DR), T("toy", "toy", OBJECT, DN),
    T("props", "prop", OBJECT, DN), T("prop", "prop", OBJECT, DN), T("hands holding", "hands", BODY, DN),
    T("blur", "blur", OBJECT, DN), T("noise", "noise", OBJECT, DN), T("artifacts", "artifact", OBJECT, DN),
    T("jpeg artifacts", "artifact", OBJECT, DN), T("moon", "moon", OBJECT, DN), T("sun", "sun", OBJECT, DN),
    T("clouds", "cloud", OBJECT, DN), T("birds", "bird", OBJECT, DN), T("furniture", "furniture", OBJECT, DN),
    T("table", "table", OBJECT, DN), T("chair", "chair", OBJECT, DR), T("window", "window", OBJECT, DN),
    T("windows", "window", OBJECT, DN), T("microphone", "microphone", OBJECT, DN), T("drink", "drink", OBJECT, DN),
    T("food", "food", OBJECT, DN), T("mug", "mug", OBJECT, DR), T("shoe", "shoe", OBJECT, DR),
    T("sneaker", "sneaker", OBJECT, DR), T("sneakers", "sneaker", OBJECT, DR), T("bottle cap", "lid", OBJECT, DR),
    T("display", "screen", OBJECT, DR), T("dial", "dial", OBJECT, DR), T("bezel", "bezel", OBJECT, DR),
    T("band", "strap", OBJECT, DR), T("cork", "cork", OBJECT, DR), T("nozzle", "nozzle", OBJECT, DR),
    T("legs of the chair", "legs", OBJECT, DR), T("cushion", "cushion", OBJECT, DR), T("seat", "seat", OBJECT, DR),
    T("plug", "plug", OBJECT, DR), T("midsole", "midsole", OBJECT, DR), T("bell", "bell", OBJECT, DN),
    T("broom", "broom", OBJECT, D2), T("emblem", "emblem", OBJECT, DN), T("watch face", "dial", OBJECT, DR),
    T("pets", "pet", OBJECT, DN), T("microphone stand", "microphone stand", OBJECT, DN),
    T("mic stand", "microphone stand", OBJECT, DN), T("tool", "tool", OBJECT, DN), T("tools", "tool", OBJECT, DN),
    T("axe", "axe", OBJECT, D2), T("rim", "rim", OBJECT, DR), T("tread", "tread", OBJECT, DR), T("heel tab", "heel tab", OBJECT, DR),
    T("pull tab", "pull tab", OBJECT, DR), T("outsole", "sole", OBJECT, DR), T("stem", "stem", OBJECT, DR),
    T("enemies", "enemy", OBJECT, D2), T("enemy", "enemy", OBJECT, D2), T("cups", "cup", OBJECT, DN), T("lampshade", "lampshade", OBJECT, DR), T("shade", "lampshade", OBJECT, DR), T("bulb", "bulb", OBJECT, DR),

    /* ---- whole-image aspects (image level) ---- */
    S("background", "background", DN), S("backgrounds", "background", DN), S("backdrop", "background", DN),
    S("setting", "background", DN), S("scene", "background", DN), S("scenery", "background", DN),
    S("environment", "background", DN), S("surroundings", "background", DN), S("location", "background", DN),
    S("lighting", "lighting", DN), S("light", "lighting", DN), S("illumination", "lighting", DN),
    S("lights", "lighting", DN), S("style", "style", DN), S("art style", "style", DA),
    S("artistic style", "style", DA), S("painting style", "style", DA), S("aesthetic", "style", DA),
S("pose", "pose", DN), S("poses", "pose", DN), S("posture", "pose", DN),
    S("stance", "pose", DN), S("action", "pose", DN), S("gesture", "pose", DN), S("composition", "composition", DA),
    S("framing", "composition", DN), S("layout", "composition", DN), S("camera angle", "angle", DN),
    S("angle", "angle", DN), S("viewpoint", "angle", DN), S("perspective", "angle", DN),
    S("view", "angle", DN), S("palette", "palette", DA), S("colour palette", "palette", DA),
    S("color palette", "palette", DA), S("colour scheme", "palette", DN), S("color scheme", "palette", DN),
    S("colours", "palette", DN), S("colors", "palette", DN), S("brushwork", "brushwork", DA),
    S("brush strokes", "brushwork", DA), S("brushstrokes", "brushwork", DA), S("strokes", "brushwork", DA),
    S("brush stroke", "brushwork", DA), S("mood", "mood", DN), S("atmosphere", "mood", DN),
    S("season", "season", DN), S("seasons", "season", DN), S("weather", "weather", DN),
    S("time of day", "time of day", DN), S("subject matter", "subject matter", DA), S("content", "subject matter", DA),
    S("subjects", "subject matter", DA), S("linework", "linework", D2), S("line art", "linework", D2),
    S("lineart", "linework", D2), S("outlines", "linework", D2), S("shading", "shading", DN),
    S("texture", "texture", DA), S("textures", "texture", DA), S("canvas texture", "texture", DA),
    S("paper texture", "texture", DA), S("colour grading", "colour grading", DP), S("color grading", "colour grading", DP),
    S("depth of field", "depth of field", DP), S("camera distance", "composition", DN), S("crop", "composition", DN),
    S("scale", "scale", DN), S("room", "background", DN), S("sky", "sky", DN), S("skies", "sky", DN),
    S("grain", "texture", DA), S("depicted", "subject matter", DA), S("motifs", "subject matter", DA),
    S("motif", "subject matter", DA), S("themes", "subject matter", DA), S("position", "position", DN), S("location in the frame", "position", DN),
    S("tone", "mood", DN), S("rendering", "style", DN), S("technique", "brushwork", DA),

    /* ---- properties (attribute level) ---- */
    P("colour", "colour"), P("color", "colour"), P("colours", "colour"), P("colors", "colour"),
    P("hue", "colour"), P("shade", "colour"), P("length", "length"), P("count", "count"),
    P("number", "count"), P("pattern", "pattern"), P("patterns", "pattern"), P("print", "pattern"),
    P("material", "material"), P("materials", "material"), P("fabric", "material"), P("finish", "material"),
    P("shape", "shape"), P("geometry", "shape"), P("silhouette", "shape"), P("shapes", "shape"), P("size", "size"), P("sizes", "size"), P("style", "style"),
    P("styles", "style"), P("tone", "colour"), P("state", "state"),
    P("type", "type"), P("kind", "type"),

    /* ---- property values ---- */
    V("red", "red", "colour"), V("blue", "blue", "colour"), V("green", "green", "colour"),
    V("yellow", "yellow", "colour"), V("black", "black", "colour"), V("white", "white", "colour"),
    V("grey", "grey", "colour"), V("gray", "grey", "colour"), V("brown", "brown", "colour"),
    V("blonde", "blonde", "colour"), V("blond", "blonde", "colour"), V("pink", "pink", "colour"),
    V("purple", "purple", "colour"), V("orange", "orange", "colour"), V("silver", "silver", "colour"),
    V("gold", "gold", "colour"), V("golden", "gold", "colour"), V("beige", "beige", "colour"),
    V("navy", "navy", "colour"), V("teal", "teal", "colour"), V("cyan", "cyan", "colour"),
    V("magenta", "magenta", "colour"), V("violet", "violet", "colour"), V("auburn", "auburn", "colour"),
    V("ginger", "ginger", "colour"), V("turquoise", "turquoise", "colour"), V("cream", "cream", "colour"),
    V("dark", "dark", "colour"), V("pastel", "pastel", "colour"), V("colourful", "colourful", "colour"),
    V("colorful", "colourful", "colour"), V("brunette", "brown", "colour"), V("platinum", "platinum", "colour"),
    V("striped", "striped", "pattern"), V("stripy", "striped", "pattern"), V("dotted", "dotted", "pattern"),
    V("polka-dot", "dotted", "pattern"), V("spotted", "spotted", "pattern"), V("plaid", "plaid", "pattern"),
    V("checked", "checked", "pattern"), V("checkered", "checked", "pattern"), V("floral", "floral", "pattern"),
    V("plain", "plain", "pattern"), V("camouflage", "camouflage", "pattern"),
    V("leather", "leather", "material"), V("denim", "denim", "material"), V("wool", "wool", "material"),
    V("woolen", "wool", "material"), V("silk", "silk", "material"), V("cotton", "cotton", "material"),
    V("metal", "metal", "material"), V("metallic", "metal", "material"), V("wooden", "wood", "material"),
    V("wood", "wood", "material"), V("ceramic", "ceramic", "material"), V("glass", "glass", "material"),
    V("plastic", "plastic", "material"), V("velvet", "velvet", "material"), V("lace", "lace", "material"),
    V("knitted", "knitted", "material"), V("matte", "matte", "material"), V("glossy", "glossy", "material"),
    V("long", "long", "length"), V("short", "short", "length"), V("shoulder-length", "shoulder-length", "length"),
    V("cropped", "short", "length"), V("curly", "curly", "style"), V("straight", "straight", "style"),
    V("wavy", "wavy", "style"), V("braided", "braided", "style"), V("bald", "bald", "style"),
    V("smiling", "smiling", "expression"), V("happy", "happy", "expression"), V("sad", "sad", "expression"),
    V("angry", "angry", "expression"), V("neutral", "neutral", "expression"), V("surprised", "surprised", "expression"),
    V("serious", "serious", "expression"), V("crying", "crying", "expression"), V("laughing", "laughing", "expression"),
    V("open", "open", "state"), V("closed", "closed", "state"), V("one", "one", "count"), V("two", "two", "count"),
    V("three", "three", "count"), V("four", "four", "count"), V("single", "one", "count"),
    V("big", "big", "size"), V("large", "large", "size"), V("small", "small", "size"), V("tiny", "small", "size"),
    V("round", "round", "shape"), V("square", "square", "shape"), V("oval", "oval", "shape"),
    V("thick", "thick", "style"), V("thin", "thin", "style"),

    /* ---- subject classes ---- */
    C("man", "man", MALE, DP), C("guy", "man", MALE, DP), C("boy", "boy", MALE, DN), C("gentleman", "man", MALE, DP),
    C("father", "man", MALE, DP), C("dad", "man", MALE, DP), C("husband", "man", MALE, DP),
    C("son", "boy", MALE, DP), C("brother", "man", MALE, DP), C("grandfather", "man", MALE, DP),
    C("grandpa", "man", MALE, DP), C("uncle", "man", MALE, DP), C("king", "king", MALE, D2), C("prince", "prince", MALE, D2),
    C("knight", "knight", MALE, D2), C("wizard", "wizard", MALE, D2), C("actor", "man", MALE, DP),
    C("woman", "woman", FEMALE, DP), C("lady", "woman", FEMALE, DP), C("girl", "girl", FEMALE, DN),
    C("mother", "woman", FEMALE, DP), C("mom", "woman", FEMALE, DP), C("wife", "woman", FEMALE, DP),
    C("daughter", "girl", FEMALE, DP), C("sister", "woman", FEMALE, DP), C("grandmother", "woman", FEMALE, DP),
    C("grandma", "woman", FEMALE, DP), C("aunt", "woman", FEMALE, DP), C("queen", "queen", FEMALE, D2), C("princess", "princess", FEMALE, D2),
    C("witch", "witch", FEMALE, D2), C("actress", "woman", FEMALE, DP),
    C("person", "person", PERSON, DP), C("child", "child", PERSON, DP), C("kid", "child", PERSON, DP),
    C("baby", "baby", PERSON, DP), C("couple", "couple", PERSON, DP), C("twins", "person", PERSON, DP), C("friend", "person", PERSON, DP),
    C("dog", "dog", ANIMAL, DN), C("puppy", "dog", ANIMAL, DN), C("cat", "cat", ANIMAL, DN),
    C("kitten", "cat", ANIMAL, DN), C("horse", "horse", ANIMAL, DN), C("bird", "bird", ANIMAL, DN),
    C("parrot", "bird", ANIMAL, DN), C("rabbit", "rabbit", ANIMAL, DN), C("fox", "fox", ANIMAL, DN),
    C("character", "character", CREATURE, D2), C("creature", "creature", CREATURE, D2),
    C("characters", "character", CREATURE, D2), C("creatures", "creature", CREATURE, D2),
    C("heroes", "hero", CREATURE, D2), C("robots", "robot", CREATURE, D2), C("monsters", "monster", CREATURE, D2),
    C("monster", "monster", CREATURE, D2), C("robot", "robot", CREATURE, D2), C("dragon", "dragon", CREATURE, D2),
    C("mascot", "mascot", CREATURE, D2), C("hero", "hero", CREATURE, D2), C("elf", "elf", CREATURE, D2),
    C("fairy", "fairy", CREATURE, D2), C("alien", "alien", CREATURE, D2), C("critter", "creature", CREATURE, D2),
    C("oc", "character", CREATURE, D2), C("fursona", "character", CREATURE, D2), C("villain", "villain", CREATURE, D2),
    C("product", "product", PRODUCT, DR), C("sneaker", "sneaker", PRODUCT, DR), C("sneakers", "sneaker", PRODUCT, DR),
    C("shoe", "shoe", PRODUCT, DR), C("shoes", "shoe", PRODUCT, DR), C("bottle", "bottle", PRODUCT, DR),
    C("mug", "mug", PRODUCT, DR), C("cup", "cup", PRODUCT, DR), C("chair", "chair", PRODUCT, DR),
    C("lamp", "lamp", PRODUCT, DR), C("desk lamp", "lamp", PRODUCT, DR), C("smartwatch", "watch", PRODUCT, DR), C("watch", "watch", PRODUCT, DR), C("bag", "bag", PRODUCT, DR),
    C("handbag", "bag", PRODUCT, DR), C("backpack", "backpack", PRODUCT, DR),
    C("headphones", "headphones", PRODUCT, DR), C("earbuds", "headphones", PRODUCT, DR), C("car", "car", PRODUCT, DR),
    C("perfume", "perfume", PRODUCT, DR), C("phone", "phone", PRODUCT, DR), C("smartphone", "phone", PRODUCT, DR),
    C("toy", "toy", PRODUCT, DR), C("figurine", "figurine", PRODUCT, DR), C("plush", "plush", PRODUCT, DR),
    C("speaker", "speaker", PRODUCT, DR), C("kettle", "kettle", PRODUCT, DR), C("vase", "vase", PRODUCT, DR),
    C("teapot", "teapot", PRODUCT, DR), C("helmet", "helmet", PRODUCT, DR), C("jacket", "jacket", PRODUCT, DR),
    C("dress", "dress", PRODUCT, DR), C("camera", "camera", PRODUCT, DR), C("laptop", "laptop", PRODUCT, DR),
    C("bike", "bicycle", PRODUCT, DR), C("bicycle", "bicycle", PRODUCT, DR),
    C("style", "style", STYLE, DA), C("art style", "style", STYLE, DA), C("painting style", "style", STYLE, DA),
    C("aesthetic", "style", STYLE, DA), C("pose", "pose", POSE, DN), C("action", "pose", POSE, DN),
    C("posture", "pose", POSE, DN), C("stance", "pose", POSE, DN), C("move", "pose", POSE, DN),
    C("gesture", "pose", POSE, DN),
};

/* Words that only hint at a domain (weights add up per domain). */
typedef struct dom_hint {
    const char *word;
    int domain;
    double w;
} dom_hint;

static const dom_hint g_dom_hints[] = {
    {"anime", D2, 2}, {"cartoon", D2, 2}, {"manga", D2, 2}, {"chibi", D2, 2}, {"comic", D2, 1.5},
    {"2d", D2, 2}, {"sprite", D2, 1.5}, {"game", D2, 1}, {"drawn", D2, 1}, {"cel", D2, 1},
    {"toy", D2, 0.5}, {"creature", D2, 1}, {"character", D2, 1}, {"characters", D2, 1.5},
    {"illustrated", D2, 1}, {"vtuber", D2, 2}, {"pixel", D2, 1},
    {"photo", DP, 1.5}, {"photos", DP, 1.5}, {"photograph", DP, 1.5}, {"photographs", DP, 1.5},
    {"selfie", DP, 2}, {"selfies", DP, 2}, {"headshot", DP, 2}, {"headshots", DP, 2}, {"portrait", DP, 2},
    {"portraits", DP, 2}, {"realistic", DP, 1}, {"photorealistic", DP, 1.5}, {"wedding", DP, 1},
    {"me", DP, 1}, {"myself", DP, 1.5}, {"family", DP, 1}, {"couple", DP, 1.5}, {"pictures", DP, 0.5},
    {"product", DR, 2}, {"products", DR, 2}, {"brand", DR, 1.5}, {"catalogue", DR, 2}, {"catalog", DR, 2},
    {"sell", DR, 2}, {"shop", DR, 1}, {"e-commerce", DR, 2}, {"advertising", DR, 1.5}, {"ad", DR, 1},
    {"packshot", DR, 2}, {"merchandise", DR, 2}, {"prototype", DR, 1}, {"design", DR, 0.5}, {"shots", DR, 0.5},
    {"painting", DA, 2}, {"paintings", DA, 2}, {"paint", DA, 1.5}, {"painted", DA, 1.5}, {"painter", DA, 2},
    {"watercolour", DA, 2}, {"watercolor", DA, 2}, {"oil", DA, 1}, {"canvas", DA, 1.5}, {"impressionist", DA, 2},
    {"artist", DA, 1.5}, {"artwork", DA, 1.5}, {"artworks", DA, 1.5}, {"sketch", DA, 1}, {"sketches", DA, 1},
    {"ink", DA, 1}, {"woodblock", DA, 2}, {"gouache", DA, 2}, {"acrylic", DA, 2}, {"brush", DA, 1},
    {"landscapes", DA, 1}, {"art", DA, 1}, {"etching", DA, 2}, {"engraving", DA, 2}, {"mural", DA, 2},
    {"pastels", DA, 1.5}, {"charcoal", DA, 1.5}, {"ukiyo-e", DA, 2}, {"fresco", DA, 2}, {"expressionist", DA, 2},
    {"cubist", DA, 2}, {"surrealist", DA, 2}, {"baroque", DA, 2},
};

/* Opposites for contrast pairs. head NULL = any head. whole: the strings are
 * complete phrases; otherwise values put before the head. */
typedef struct opposite {
    const char *head, *prop, *a, *b;
    int whole;
} opposite;

static const opposite g_opposites[] = {
    {"hair", "colour", "red", "blonde", 0},
    {"eyes", "colour", "blue", "brown", 0},
    {"skin", "colour", "pale", "dark", 0},
    {NULL, "colour", "red", "blue", 0},
    {"hair", "length", "long", "short", 0},
    {NULL, "length", "long", "short", 0},
    {"hair", "style", "curly", "straight", 0},
    {NULL, "pattern", "striped", "plain", 0},
    {NULL, "material", "leather", "denim", 0},
    {"face", "expression", "smiling face", "crying face", 1},
    {NULL, "expression", "happy", "sad", 0},
    {"eyes", "count", "one eye", "three eyes", 1},
    {NULL, "count", "one", "three", 0},
    {NULL, "state", "open", "closed", 0},
    {NULL, "size", "large", "small", 0},
    {NULL, "shape", "round", "square", 0},
    {"background", NULL, "a forest background", "a city background", 1},
    {"lighting", NULL, "bright daylight", "dim candlelight", 1},
    {"pose", NULL, "standing", "sitting", 1},
    {"palette", NULL, "warm colours", "cool colours", 1},
    {"season", NULL, "summer", "winter", 1},
    {"weather", NULL, "sunny weather", "rainy weather", 1},
    {"time of day", NULL, "daytime", "night", 1},
    {"mood", NULL, "cheerful mood", "gloomy mood", 1},
    {"composition", NULL, "close-up", "wide shot", 1},
    {"angle", NULL, "front view", "side view", 1},
    {"subject matter", NULL, "a landscape", "a portrait", 1},
    {"style", NULL, "photorealistic", "cartoon", 1},
};

/* ---- index ---------------------------------------------------------------- */

#define N_ENTRIES (sizeof g_entries / sizeof g_entries[0])
#define N_HINTS (sizeof g_dom_hints / sizeof g_dom_hints[0])
static const it_lex_entry *g_sorted[N_ENTRIES];
static unsigned char g_flen[N_ENTRIES]; /* length of the first word of g_sorted[i] */
#define HINT_SLOTS 512
static const dom_hint *g_hint_hash[HINT_SLOTS]; /* open addressing by word */
_Static_assert(N_HINTS < HINT_SLOTS / 2, "grow HINT_SLOTS");
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Hash of first words -> the run of g_sorted entries starting with it:
 * lookups happen several times per token, so one hash probe replaces a
 * binary search. Open addressing, power-of-two size, more than twice the
 * number of distinct first words. */
#define HASH_SLOTS 4096
typedef struct hslot {
    const char *word; /* points into the entry's words; NULL = empty */
    unsigned short len, start, count;
} hslot;
static hslot g_hash[HASH_SLOTS];
_Static_assert(N_ENTRIES < HASH_SLOTS / 2 && N_ENTRIES < 65536, "grow HASH_SLOTS");

static unsigned hash_word(const char *w, size_t n)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

/* Length of the first word of an entry. */
static size_t first_len(const char *w)
{
    const char *sp = strchr(w, ' ');
    return sp ? (size_t)(sp - w) : strlen(w);
}

static int cmp_first(const char *a, size_t na, const char *b, size_t nb)
{
    size_t m = na < nb ? na : nb;
    int c = memcmp(a, b, m);
    return c ? c : (na < nb ? -1 : na > nb ? 1 : 0);
}

static int cmp_entries(const void *pa, const void *pb)
{
    const it_lex_entry *a = *(const it_lex_entry *const *)pa, *b = *(const it_lex_entry *const *)pb;
    int c = cmp_first(a->words, first_len(a->words), b->words, first_len(b->words));
    /* Keep table order among entries with the same first word (qsort is not
     * stable, so order by address). */
    return c ? c : (a < b ? -1 : a > b);
}

static void build_index(void)
{
    for (size_t i = 0; i < N_ENTRIES; i++) g_sorted[i] = &g_entries[i];
    qsort(g_sorted, N_ENTRIES, sizeof g_sorted[0], cmp_entries);
    for (size_t i = 0; i < N_ENTRIES; i++) g_flen[i] = (unsigned char)first_len(g_sorted[i]->words);
    for (size_t i = 0; i < N_HINTS; i++) {
        size_t len;
        unsigned h = it_lex_hash(g_dom_hints[i].word, &len) & (HINT_SLOTS - 1);
        while (g_hint_hash[h]) h = (h + 1) & (HINT_SLOTS - 1);
        g_hint_hash[h] = &g_dom_hints[i];
    }
    for (size_t i = 0; i < N_ENTRIES;) {
        size_t j = i + 1;
        while (j < N_ENTRIES && !cmp_first(g_sorted[j]->words, g_flen[j], g_sorted[i]->words, g_flen[i])) j++;
        unsigned h = hash_word(g_sorted[i]->words, g_flen[i]) & (HASH_SLOTS - 1);
        while (g_hash[h].word) h = (h + 1) & (HASH_SLOTS - 1);
        g_hash[h] = (hslot){g_sorted[i]->words, g_flen[i], (unsigned short)i, (unsigned short)(j - i)};
        i = j;
    }
}

/* Does entry e match words[0..]? Returns the number of words or 0. */
IT_LEX_NOCOV static int entry_match(const it_lex_entry *e, const char *const *words, int n_words)
{
    const char *p = e->words;
    int k = 0;
    while (*p) {
        if (k >= n_words || !words[k]) return 0;
        size_t l = first_len(p);
        if (strlen(words[k]) != l || memcmp(words[k], p, l) != 0) return 0;
        k++;
        p += l;
        if (*p == ' ') p++;
    }
    return k;
}

static int match_exact(const it_lex_entry **out, const char *const *words, int n_words, it_lex_kind kind);

/* The slot of the entries whose first word is w, or NULL. */
IT_LEX_NOCOV static const hslot *first_word_slot_h(const char *w, unsigned hash, size_t wl)
{
    pthread_once(&g_once, build_index);
    unsigned h = hash & (HASH_SLOTS - 1);
    while (g_hash[h].word && (g_hash[h].len != wl || memcmp(g_hash[h].word, w, wl)))
        h = (h + 1) & (HASH_SLOTS - 1);
    return g_hash[h].word ? &g_hash[h] : NULL;
}

static const hslot *first_word_slot(const char *w)
{
    size_t wl;
    unsigned h = it_lex_hash(w, &wl);
    return first_word_slot_h(w, h, wl);
}

/* it_lex_match probes words[0] (exact), then for k = 1 the singular of
 * words[0]: every other retry keeps words[0] as it is. */
int it_lex_may_start_h(const char *w, unsigned h, size_t l)
{
    if (first_word_slot_h(w, h, l)) return 1;
    if (l < 4 || w[l - 1] != 's') return 0;
    char sing[64];
    it_lex_singular(sing, sizeof sing, w);
    return strcmp(sing, w) && first_word_slot(sing);
}

int it_lex_may_start(const char *w)
{
    size_t l;
    unsigned h = it_lex_hash(w, &l);
    return it_lex_may_start_h(w, h, l);
}


int it_lex_match(const it_lex_entry **out, const char *const *words, int n_words, it_lex_kind kind)
{
    int m = match_exact(out, words, n_words, kind);
    if (m || n_words <= 0 || !words[0] || kind == IT_LEX_VALUE || kind == IT_LEX_PROPERTY) return m;
    /* Plurals not in the tables: "price tags" -> "price tag". The last word
     * of a multi-word noun is the one that takes the plural. */
    char sing[4][64];
    const char *w2[4];
    int n = n_words < 4 ? n_words : 4;
    for (int k = n; k >= 1; k--) {
        size_t lk = words[k - 1] ? strlen(words[k - 1]) : 0;
        if (lk < 4 || words[k - 1][lk - 1] != 's') continue;
        for (int j = 0; j < k; j++) w2[j] = words[j];
        it_lex_singular(sing[k - 1], sizeof sing[0], words[k - 1]);
        if (!strcmp(sing[k - 1], words[k - 1])) continue;
        w2[k - 1] = sing[k - 1];
        const it_lex_entry *e;
        if (match_exact(&e, w2, k, kind) == k && (e->kind == IT_LEX_THING || e->kind == IT_LEX_SCENE)) {
            *out = e;
            return k;
        }
    }
    return 0;
}

IT_LEX_NOCOV static int match_exact(const it_lex_entry **out, const char *const *words, int n_words, it_lex_kind kind)
{
    *out = NULL;
    if (n_words <= 0 || !words[0]) return 0;
    const hslot *hs = first_word_slot(words[0]);
    if (!hs) return 0;
    int best = 0;
    for (size_t i = hs->start; i < (size_t)hs->start + hs->count; i++) {
        const it_lex_entry *e = g_sorted[i];
        if (kind && e->kind != kind) continue;
        int m = entry_match(e, words, n_words);
        if (m > best) {
            best = m;
            *out = e;
        }
    }
    return best;
}

/* The first entry of each kind (0: of any kind) that is exactly the single
 * word w: what match_exact(&e, &w, 1, kind) returns. */
IT_LEX_NOCOV static void single_exact(const it_lex_entry *out[6], const char *w, unsigned h, size_t wl)
{
    for (int k = 0; k < 6; k++) out[k] = NULL;
    const hslot *hs = first_word_slot_h(w, h, wl);
    if (!hs) return;
    for (size_t i = hs->start; i < (size_t)hs->start + hs->count; i++) {
        const it_lex_entry *e = g_sorted[i];
        if (e->words[wl] != '\0') continue; /* more words: cannot match one word */
        if (!out[0]) out[0] = e;
        if (!out[e->kind]) out[e->kind] = e;
    }
}

void it_lex_match_single(const it_lex_entry *out[6], const char *w)
{
    size_t wl;
    unsigned h = it_lex_hash(w, &wl);
    single_exact(out, w, h, wl);
    if (wl < 4 || w[wl - 1] != 's') return;
    /* it_lex_match's plural retry, for the kinds that take it: the singular's
     * match must be a thing or a scene */
    char sing[64];
    it_lex_singular(sing, sizeof sing, w);
    if (!strcmp(sing, w)) return;
    const it_lex_entry *so[6];
    size_t sl;
    unsigned sh = it_lex_hash(sing, &sl);
    single_exact(so, sing, sh, sl);
    static const int kinds[] = {0, IT_LEX_THING, IT_LEX_SCENE, IT_LEX_CLASS};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int kd = kinds[k];
        if (!out[kd] && so[kd] && (so[kd]->kind == IT_LEX_THING || so[kd]->kind == IT_LEX_SCENE)) out[kd] = so[kd];
    }
}

void it_lex_domain_score(double score[IT_DOMAIN_COUNT], const char *const *words, int n_words,
                         const unsigned char *may_start)
{
    pthread_once(&g_once, build_index);
    for (int i = 0; i < n_words; i++) {
        if (!words[i]) continue;
        size_t len;
        unsigned h = it_lex_hash(words[i], &len) & (HINT_SLOTS - 1);
        for (; g_hint_hash[h]; h = (h + 1) & (HINT_SLOTS - 1))
            if (!strcmp(g_hint_hash[h]->word, words[i])) {
                score[g_hint_hash[h]->domain] += g_hint_hash[h]->w;
                break;
            }
        const it_lex_entry *e;
        if (may_start && !may_start[i]) continue; /* it_lex_match would find nothing */
        int m = it_lex_match(&e, words + i, n_words - i, 0);
        /* Only count a matched entry that carries a domain and is not also
         * covered by a hint (hints take precedence for the same word). */
        if (m && e->domain >= 0) score[e->domain] += 1.0;
    }
}

int it_lex_opposites(const char **a, const char **b, int *whole, const char *head, const char *prop)
{
    for (size_t i = 0; i < sizeof g_opposites / sizeof g_opposites[0]; i++) {
        const opposite *o = &g_opposites[i];
        if (o->head && (!head || strcmp(o->head, head))) continue;
        if ((o->prop == NULL) != (prop == NULL)) continue;
        if (o->prop && strcmp(o->prop, prop)) continue;
        *a = o->a;
        *b = o->b;
        *whole = o->whole;
        return 1;
    }
    return 0;
}

/* ---- closed classes ---------------------------------------------------------- */

IT_WORDSET_DEFINE(g_det, "a", "an", "the", "this", "that", "these", "those", "some", "any",
                                    "every", "each", "all", "both", "no", "another", "other");
IT_WORDSET_DEFINE(g_poss, "his", "her", "its", "their", "my", "our", "your");
IT_WORDSET_DEFINE(g_pron, "he", "she", "it", "they", "him", "them");
IT_WORDSET_DEFINE(g_func, 
        "a", "an", "the", "this", "that", "these", "those", "some", "any", "every", "each", "all",
        "both", "his", "her", "its", "their", "my", "our", "your", "he", "she", "it", "they", "him",
        "them", "i", "we", "you", "me", "us", "is", "are", "was", "were", "be", "been", "being", "am",
        "should", "must", "can", "could", "may", "might", "will", "would", "shall", "has", "have",
        "had", "do", "does", "did", "to", "of", "in", "on", "at", "for", "with", "from", "by", "into",
        "onto", "across", "between", "and", "or", "but", "nor", "either", "neither", "so", "as",
        "than", "then", "also", "too", "please", "just", "only", "very", "really", "who", "which",
        "what", "where", "when", "while", "whose", "there", "here", "if", "not", "no", "need",
        "needs", "want", "wants", "like", "such", "over", "under", "around", "every", "always",
        "never", "make", "sure", "let", "able", "get", "gets", "got", "one's", "apart", "inside",
        "outside", "behind", "above", "below", "beside", "underneath", "near", "along", "against",
        "together", "within", "toward", "towards");
IT_WORDSET_DEFINE(g_num, "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                  "single");

static void wordset_build(it_wordset *ws)
{
    for (size_t i = 0; i < ws->n; i++) {
        size_t len;
        unsigned h = it_lex_hash(ws->words[i], &len);
        size_t k = h % ws->n_slots;
        while (ws->slots[k].w) k = (k + 1) % ws->n_slots;
        ws->slots[k] = (it_wordset_slot){ws->words[i], h, (unsigned)len};
    }
}

int it_wordset_has(it_wordset *ws, const char *w)
{
    size_t len;
    unsigned h = it_lex_hash(w, &len);
    return it_wordset_has_h(ws, w, h, len);
}

IT_LEX_NOCOV int it_wordset_has_h(it_wordset *ws, const char *w, unsigned h, size_t len)
{
    int st = atomic_load_explicit(&ws->state, memory_order_acquire);
    if (st != 2) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&ws->state, &expect, 1)) {
            wordset_build(ws);
            atomic_store_explicit(&ws->state, 2, memory_order_release);
        } else {
            while (atomic_load_explicit(&ws->state, memory_order_acquire) != 2) sched_yield();
        }
    }
    for (size_t k = h % ws->n_slots; ws->slots[k].w; k = (k + 1) % ws->n_slots)
        if (ws->slots[k].hash == h && ws->slots[k].len == len && !memcmp(ws->slots[k].w, w, len)) return 1;
    return 0;
}

void it_lex_closed_words(void (*add)(void *ctx, const char *w, unsigned lexw), void *ctx)
{
    const struct { const it_wordset *ws; unsigned f; } sets[] = {
        {&g_func, IT_LEXW_FUNCTION}, {&g_poss, IT_LEXW_POSSESSIVE}, {&g_det, IT_LEXW_DETERMINER},
        {&g_pron, IT_LEXW_PRONOUN}, {&g_num, IT_LEXW_NUMBER}};
    for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++)
        for (size_t i = 0; i < sets[k].ws->n; i++) add(ctx, sets[k].ws->words[i], sets[k].f);
}

int it_lex_is_determiner(const char *w) { return it_wordset_has(&g_det, w); }

int it_lex_is_possessive(const char *w) { return it_wordset_has(&g_poss, w); }

int it_lex_is_pronoun(const char *w) { return it_wordset_has(&g_pron, w); }

int it_lex_is_function(const char *w) { return it_wordset_has(&g_func, w); }

unsigned it_lex_word_class(const char *w, unsigned h, size_t len)
{
    unsigned f = 0;
    if (it_wordset_has_h(&g_func, w, h, len)) f |= IT_LEXW_FUNCTION;
    if (it_wordset_has_h(&g_poss, w, h, len)) f |= IT_LEXW_POSSESSIVE;
    if (it_wordset_has_h(&g_det, w, h, len)) f |= IT_LEXW_DETERMINER;
    if (it_wordset_has_h(&g_pron, w, h, len)) f |= IT_LEXW_PRONOUN;
    if (it_wordset_has_h(&g_num, w, h, len)) f |= IT_LEXW_NUMBER;
    if (it_lex_may_start_h(w, h, len)) f |= IT_LEXW_START;
    return f;
}

int it_lex_is_number(const char *w, int *value)
{
    static const char *const l[] = {"zero", "one", "two", "three", "four", "five",
                                    "six", "seven", "eight", "nine", "ten", NULL};
    for (int i = 0; l[i]; i++)
        if (!strcmp(w, l[i])) {
            if (value) *value = i;
            return 1;
        }
    if (!strcmp(w, "single")) {
        if (value) *value = 1;
        return 1;
    }
    return 0;
}

const char *it_lex_singular(char *buf, size_t n, const char *w)
{
    size_t l = strlen(w);
    if (n == 0) return buf;
    if (l >= n) l = n - 1;
    memcpy(buf, w, l);
    buf[l] = '\0';
    if (l > 4 && !strcmp(buf + l - 3, "ies")) {
        strcpy(buf + l - 3, "y");
    } else if (l > 4 && (!strcmp(buf + l - 4, "ches") || !strcmp(buf + l - 4, "shes") ||
                         !strcmp(buf + l - 3, "xes") || !strcmp(buf + l - 4, "sses"))) {
        buf[l - 2] = '\0';
    } else if (l > 3 && buf[l - 1] == 's' && buf[l - 2] != 's' && buf[l - 2] != 'u' && buf[l - 2] != 'i') {
        buf[l - 1] = '\0';
    }
    return buf;
}
