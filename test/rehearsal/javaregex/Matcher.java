import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Scanner;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

// Matcher reads "<base64 pattern> <base64 value>" lines on stdin and answers
// one line each: "match", "nomatch" or "error <message>". It searches with
// Matcher.find(), so a pattern matches the whole value only if it anchors
// itself, as SSM's allowedPattern must.
public class Matcher {
    public static void main(String[] args) {
        Base64.Decoder dec = Base64.getDecoder();
        Scanner in = new Scanner(System.in, StandardCharsets.UTF_8);
        StringBuilder out = new StringBuilder();
        while (in.hasNextLine()) {
            String line = in.nextLine();
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split(" ", -1);
            if (f.length != 2) {
                out.append("error malformed input line\n");
                continue;
            }
            String pattern = new String(dec.decode(f[0]), StandardCharsets.UTF_8);
            String value = new String(dec.decode(f[1]), StandardCharsets.UTF_8);
            try {
                boolean found = Pattern.compile(pattern).matcher(value).find();
                out.append(found ? "match\n" : "nomatch\n");
            } catch (PatternSyntaxException e) {
                out.append("error ").append(e.getDescription().replace('\n', ' ')).append('\n');
            }
        }
        System.out.print(out);
        System.out.flush();
    }
}
